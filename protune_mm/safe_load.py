# placeholder until measured
