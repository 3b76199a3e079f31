"""Studies run from tools/: the transfer study (``transfer``)."""
