"""The synthetic COCO 2017 instance set: images with polygons and crowd RLEs."""
import os
import os.path as osp
from typing import Callable, List, NamedTuple, Tuple

import numpy as np

from .draw import (background, diamond, ellipse, finish, image_size, octagon, paint,
                   place, polygon_mask, rect, rotate, triangle)
from .looks import LOOKS
from .stamp import FORMAT_VERSION

# The real COCO 2017 categories, in id order by supercategory. Ids 12, 26, 29, 30, 45,
# 66, 68, 69, 71 and 83 are unused in COCO 2017, exactly as in the official files.
UNUSED_IDS = {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}
_NAMES = [
    ('person', ('person',)),
    ('vehicle', ('bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck',
                 'boat')),
    ('outdoor', ('traffic light', 'fire hydrant', 'stop sign', 'parking meter', 'bench')),
    ('animal', ('bird', 'cat', 'dog', 'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra',
                'giraffe')),
    ('accessory', ('backpack', 'umbrella', 'handbag', 'tie', 'suitcase')),
    ('sports', ('frisbee', 'skis', 'snowboard', 'sports ball', 'kite', 'baseball bat',
                'baseball glove', 'skateboard', 'surfboard', 'tennis racket')),
    ('kitchen', ('bottle', 'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl')),
    ('food', ('banana', 'apple', 'sandwich', 'orange', 'broccoli', 'carrot', 'hot dog',
              'pizza', 'donut', 'cake')),
    ('furniture', ('chair', 'couch', 'potted plant', 'bed', 'dining table', 'toilet')),
    ('electronic', ('tv', 'laptop', 'mouse', 'remote', 'keyboard', 'cell phone')),
    ('appliance', ('microwave', 'oven', 'toaster', 'sink', 'refrigerator')),
    ('indoor', ('book', 'clock', 'vase', 'scissors', 'teddy bear', 'hair drier',
                'toothbrush')),
]
#: (id, name, supercategory) of the 80 categories.
COCO_CATEGORIES = [
    (cid, name, sup) for cid, (name, sup) in zip(
        sorted(set(range(1, 91)) - UNUSED_IDS),
        [(name, sup) for sup, names in _NAMES for name in names])]


class CocoLook(NamedTuple):
    name: str
    shape: Callable[[float, float], np.ndarray]
    aspect: Tuple[float, float]  # range of height / width
    max_rotation: float  # degrees


# The drawn COCO categories, each with one shape, aspect range and look.
COCO_DRAWN = [
    CocoLook('person', ellipse, (2.2, 2.8), 8),
    CocoLook('car', rect, (0.42, 0.55), 6),
    CocoLook('dog', ellipse, (0.6, 0.75), 12),
    CocoLook('stop sign', octagon, (1.0, 1.0), 0),
    CocoLook('sports ball', ellipse, (1.0, 1.0), 0),
    CocoLook('kite', diamond, (1.4, 1.7), 15),
    CocoLook('pizza', triangle, (0.8, 1.0), 20),
    CocoLook('tv', rect, (0.7, 0.8), 0),
]


def _coco_image(rng: np.random.Generator, size: int, crowd: bool):
    """One COCO image: (PIL image, list of (category name, polygon or RLE mask))."""
    from pycocotools import mask as mask_utils

    width, height = image_size(size, rng)
    img = background(width, height, rng)
    boxes: List[np.ndarray] = []
    objects = []
    short = min(width, height)
    if crowd:
        # A person crowd: many small overlapping people annotated as ONE iscrowd=1
        # region with an RLE mask (their union), as in real COCO.
        cw, ch = rng.uniform(0.3, 0.45) * width, rng.uniform(0.2, 0.3) * height
        off = place(np.array([0, 0, cw, ch]), width, height, boxes, rng)
        if off is not None:
            union = np.zeros((height, width), bool)
            for _ in range(int(rng.integers(6, 13))):
                ph = rng.uniform(0.6, 1.0) * ch
                pw = ph / rng.uniform(2.2, 2.8)
                centre = off + [rng.uniform(pw / 2, cw - pw / 2), ch - ph / 2]
                mask = polygon_mask(ellipse(pw, ph) + centre, width, height)
                paint(img, mask, LOOKS['person'], rng)
                union |= mask
            objects.append(('person', mask_utils.encode(np.asfortranarray(union.astype(np.uint8)))))
    wanted, placed = int(rng.integers(1, 6)), 0
    # Extra attempts only until one object fits: mmdet's filter_empty_gt drops images
    # without a (non-crowd) object, so every image gets at least one.
    for attempt in range(wanted + 20):
        if placed == wanted or (attempt >= wanted and placed > 0):
            break
        spec = COCO_DRAWN[int(rng.integers(len(COCO_DRAWN)))]
        long_side = rng.uniform(0.14, 0.38 if attempt < wanted else 0.2) * short
        aspect = rng.uniform(*spec.aspect)
        w, h = (long_side / aspect, long_side) if aspect >= 1 else (long_side, long_side * aspect)
        poly = rotate(spec.shape(w, h), rng.uniform(-spec.max_rotation, spec.max_rotation))
        off = place(np.concatenate([poly.min(0), poly.max(0)]), width, height, boxes, rng)
        if off is None:
            continue
        poly = np.round(poly + off, 2)
        paint(img, polygon_mask(poly, width, height), LOOKS[spec.name], rng)
        objects.append((spec.name, poly))
        placed += 1
    return finish(img, rng), objects


def write_split(out_dir: str, split: str, num: int, size: int, seed: int) -> dict:
    from pycocotools import mask as mask_utils

    split_code = {'train': 0, 'val': 1}[split]
    # Disjoint id ranges per split, as in real COCO where ids are unique across splits.
    id_base = split_code * 1_000_000
    cat_id = {name: cid for cid, name, _ in COCO_CATEGORIES}
    img_dir = osp.join(out_dir, f'{split}2017')
    os.makedirs(img_dir, exist_ok=True)
    images, annotations = [], []
    for i in range(num):
        # One generator per image: image i does not change when ``num`` does.
        rng = np.random.default_rng([seed, 0, split_code, i])
        # Every third image has a crowd, so even a tiny split holds one.
        pil, objects = _coco_image(rng, size, crowd=(i % 3 == 0))
        img_id = id_base + i + 1
        file_name = f'{img_id:012d}.jpg'
        pil.save(osp.join(img_dir, file_name), quality=92)
        images.append(dict(id=img_id, file_name=file_name, width=pil.width, height=pil.height))
        for name, seg in objects:
            if isinstance(seg, dict):  # crowd: compressed RLE, counts as str like COCO's
                rle, iscrowd = seg, 1
                segmentation = dict(size=[int(s) for s in rle['size']],
                                    counts=rle['counts'].decode('ascii'))
                bbox = [round(float(v), 2) for v in mask_utils.toBbox(rle)]
            else:  # one polygon; area as COCO defines it, from the rasterised polygon
                iscrowd = 0
                segmentation = [[float(v) for v in seg.reshape(-1)]]
                rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, pil.height, pil.width))
                (x0, y0), (x1, y1) = seg.min(0), seg.max(0)
                bbox = [round(float(v), 2) for v in (x0, y0, x1 - x0, y1 - y0)]
            annotations.append(dict(
                id=id_base + len(annotations) + 1, image_id=img_id,
                category_id=cat_id[name], segmentation=segmentation,
                area=float(mask_utils.area(rle)), bbox=bbox, iscrowd=iscrowd))
    return dict(
        info=dict(description='protune_mm synthetic data in the COCO 2017 format',
                  version=str(FORMAT_VERSION), year=2017, contributor='protune_mm',
                  url='', date_created=''),
        licenses=[], images=images, annotations=annotations,
        categories=[dict(id=cid, name=name, supercategory=sup)
                    for cid, name, sup in COCO_CATEGORIES])
