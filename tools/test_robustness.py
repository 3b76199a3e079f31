"""Robustness of a detector or segmentor to corrupted inputs (ImageNet-C / COCO-C
corruptions, Michaelis et al. 2019): the stock metrics per corruption and
severity, clean performance, mPC and rPC, as JSON, a table and a PNG chart.

    python tools/test_robustness.py CONFIG CKPT_OR_PACK [--corruptions benchmark]
        [--severities 1 2 3 4 5] [--seed 0] [--results FILE] [--resume]
        [tools/test.py's options]

The logic is ``protune_mm/robustness/``; README.md, section Robustness.
"""
from protune_mm.cli.robustness import main

if __name__ == '__main__':
    main()
