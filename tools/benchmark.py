"""Cost of full fine-tuning vs frozen head-only vs Pro-tuning vs VPT on one model.

    python tools/benchmark.py CONFIG [--methods full frozen protune+me vpt+me ...]
        [--device cpu|cuda] [--repeats N] [--out FILE.json] ...

What is measured and how: ``protune_mm/benchmark/model.py``; README.md, Benchmarks.
"""
from protune_mm.benchmark.model import main

if __name__ == '__main__':
    main()
