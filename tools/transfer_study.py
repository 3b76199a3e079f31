"""Do prompts learn? A small CPU transfer study from synthetic task A to task B.

    python tools/transfer_study.py [--backbones resnet vit] \\
        [--methods frozen protune vpt full scratch] [--method-lr full=0.001] ...

The study is ``protune_mm/study/transfer.py``; results: README.md, Benchmarks.
"""
import sys

from protune_mm.study.transfer import parse_args, run

if __name__ == '__main__':
    try:
        args = parse_args()
    except ValueError as e:  # a usage error naming the option, not a traceback
        sys.exit(f'transfer_study.py: error: {e}')
    run(args)
