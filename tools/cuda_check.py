"""GPU acceptance check for a new machine: mmcv's CUDA ops, AMP training of every
config, DDP over NCCL and the CUDA benchmarks, in one table and one JSON.

    python tools/cuda_check.py [--out FILE.json] [--work-dir DIR] [--skip ops train ddp bench]

Exit codes: 0 all passed, 1 a check failed, 3 checks skipped (no GPU / no mmcv CUDA
ops), 2 bad arguments. The checks: ``protune_mm/cli/cuda_check.py``.
"""
import sys

from protune_mm.cli.cuda_check import main

if __name__ == '__main__':
    sys.exit(main())
