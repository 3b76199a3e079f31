"""Write deterministic synthetic data in the COCO 2017 and ADE20K layouts.

    python tools/make_synthetic_data.py [--coco data/coco] [--ade data/ade]
        [--only {coco,ade}] [--num-train 40] [--num-val 8] [--size 320] [--seed 0] [--force]

The generator is ``protune_mm.data.synthetic`` (``make_coco``, ``make_ade20k``).
"""
from protune_mm.data.synthetic import main

if __name__ == '__main__':
    main()
