"""Quickstart: the whole workflow on synthetic data, on CPU, in minutes.

    python tools/quickstart.py [--only det|seg] [--iters N] [--work-dir DIR]

The steps are ``protune_mm/cli/quickstart.py``; ``make quickstart`` runs this.
"""
from protune_mm.cli.quickstart import main

if __name__ == '__main__':
    main()
