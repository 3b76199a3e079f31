"""Paired, in-process timing of the backbone alone: the stock ResNet against the
wrapped ones.

    python tools/benchmark_backbone.py [--depth 50] [--batch 2] [--size 320] \\
        [--rounds 9] [--threads 2]

What is measured and how: ``protune_mm/benchmark/backbone.py``.
"""
from protune_mm.benchmark.backbone import main

if __name__ == '__main__':
    main()
