"""Check Frozen / ProTune / VPT on the backbones of the stock mmdet and mmseg configs
(or the given ones): identity at init, gradients, frozen tensors unchanged.

    python tools/check_backbones.py [CONFIG ...] [--methods frozen protune vpt]
        [--size 64] [--max-size 512] [--timeout 300] [--threads 1] [--out FILE]

The sweep is ``protune_mm/cli/check_backbones.py``; README.md, section Tools.
"""
import sys

from protune_mm.cli.check_backbones import main

if __name__ == '__main__':
    sys.exit(main())
