"""The backbone sweep behind ``tools/check_backbones.py``: every method checked on
the backbones of many configs.

- ``configs``: which configs, and the weight-free backbone config of each;
- ``backbone``: one backbone checked in this process (input size, methods);
- ``workers``: the check in worker processes (a crash or a time-out fails one
  backbone, not the sweep) and the sweep over all configs;
- ``summary``: the counts by backbone type and the printed report.

Command line: ``protune_mm/cli/check_backbones.py``.
"""
