"""Deterministic synthetic data in the exact COCO 2017 and ADE20K directory layouts.

Real COCO / ADE20K cannot be downloaded here, yet the stock dataset configs
(``mmdet::_base_/datasets/coco_instance.py``, ``coco_detection.py`` and
``mmseg::_base_/datasets/ade20k.py``) should run unchanged. This module writes
small datasets those configs load as they are, with a handful of real categories /
classes drawn with a consistent look each, so a short CPU training run can learn
something::

    data/coco/annotations/instances_{train,val}2017.json
    data/coco/{train,val}2017/000000000001.jpg ...
    data/ade/ADEChallengeData2016/images/{training,validation}/ADE_{train,val}_00000001.jpg
    data/ade/ADEChallengeData2016/annotations/{training,validation}/ADE_..._00000001.png

COCO: the real 80 categories (real ids 1..90 with gaps, names, supercategories),
polygon ``segmentation`` for single objects and a few ``iscrowd=1`` person crowds
with compressed RLE. ADE20K: single-channel uint8 PNGs, 0 = other (mmseg's
``reduce_zero_label`` turns it into ignore), 1..150 = the real class indices.

Same parameters and seed give byte-identical files. A finished set carries a
``protune_synthetic.json`` stamp (written last, in a scratch directory that is
renamed into place), so an existing complete set is skipped and an interrupted
run never looks complete.

The parts: ``looks`` (each category's look), ``draw`` (shapes, drawing steps),
``coco`` and ``ade`` (one image and one split of each set), ``stamp`` (the stamp and
the scratch-directory swap). The command line is ``protune_mm.cli.make_synthetic_data``::

    python tools/make_synthetic_data.py [--coco data/coco] [--ade data/ade]
        [--only {coco,ade}] [--num-train 40] [--num-val 8] [--size 320] [--seed 0] [--force]
"""
import json
import os
import os.path as osp

from . import ade, coco
from .stamp import STAMP, check_params, generate, read_stamp

__all__ = ['make_coco', 'make_ade20k', 'read_stamp', 'STAMP']


def make_coco(root: str = 'data/coco', num_train: int = 40, num_val: int = 8,
              image_size: int = 320, seed: int = 0, force: bool = False) -> dict:
    """Write a synthetic COCO 2017 instance-segmentation set under ``root``.

    Returns ``dict(root, written, reason)``; ``written`` is False when ``root``
    already held a complete set with the same parameters (and ``force`` is False).
    """
    params = check_params(num_train, num_val, image_size, seed)

    def write(out):
        os.makedirs(osp.join(out, 'annotations'))
        for split, num in (('train', num_train), ('val', num_val)):
            data = coco.write_split(out, split, num, image_size, seed)
            with open(osp.join(out, 'annotations', f'instances_{split}2017.json'), 'w') as f:
                json.dump(data, f, separators=(',', ':'))

    return generate(root, 'coco', params, force, write)


def make_ade20k(root: str = 'data/ade', num_train: int = 40, num_val: int = 8,
                image_size: int = 320, seed: int = 0, force: bool = False) -> dict:
    """Write a synthetic ADE20K (ADEChallengeData2016) set under ``root``.

    Returns ``dict(root, written, reason)`` like :func:`make_coco`.
    """
    params = check_params(num_train, num_val, image_size, seed)

    def write(out):
        for split, num in (('train', num_train), ('val', num_val)):
            ade.write_split(out, split, num, image_size, seed)

    return generate(root, 'ade20k', params, force, write)
