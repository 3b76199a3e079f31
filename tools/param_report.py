"""Parameters per part of a config's model, and the size of its prompt packs.

    python tools/param_report.py CONFIG [--cfg-options KEY=VALUE ...]

The report is ``protune_mm/cli/param_report.py``.
"""
from protune_mm.cli.param_report import main

if __name__ == '__main__':
    main()
