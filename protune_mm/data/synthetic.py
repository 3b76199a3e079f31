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

Usage::

    python tools/make_synthetic_data.py [--coco data/coco] [--ade data/ade]
        [--only {coco,ade}] [--num-train 40] [--num-val 8] [--size 320] [--seed 0] [--force]
"""
import argparse
import json
import math
import os
import os.path as osp
import shutil
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

import numpy as np
from PIL import Image, ImageDraw

STAMP = 'protune_synthetic.json'
# Bump whenever the drawing or the file format changes: older sets then count as stale.
FORMAT_VERSION = 1

# The real COCO 2017 categories: (id, name, supercategory). Ids 12, 26, 29, 30, 45,
# 66, 68, 69, 71 and 83 are unused in COCO 2017, exactly as in the official files.
COCO_CATEGORIES = [
    (1, 'person', 'person'), (2, 'bicycle', 'vehicle'), (3, 'car', 'vehicle'),
    (4, 'motorcycle', 'vehicle'), (5, 'airplane', 'vehicle'), (6, 'bus', 'vehicle'),
    (7, 'train', 'vehicle'), (8, 'truck', 'vehicle'), (9, 'boat', 'vehicle'),
    (10, 'traffic light', 'outdoor'), (11, 'fire hydrant', 'outdoor'),
    (13, 'stop sign', 'outdoor'), (14, 'parking meter', 'outdoor'),
    (15, 'bench', 'outdoor'), (16, 'bird', 'animal'), (17, 'cat', 'animal'),
    (18, 'dog', 'animal'), (19, 'horse', 'animal'), (20, 'sheep', 'animal'),
    (21, 'cow', 'animal'), (22, 'elephant', 'animal'), (23, 'bear', 'animal'),
    (24, 'zebra', 'animal'), (25, 'giraffe', 'animal'), (27, 'backpack', 'accessory'),
    (28, 'umbrella', 'accessory'), (31, 'handbag', 'accessory'), (32, 'tie', 'accessory'),
    (33, 'suitcase', 'accessory'), (34, 'frisbee', 'sports'), (35, 'skis', 'sports'),
    (36, 'snowboard', 'sports'), (37, 'sports ball', 'sports'), (38, 'kite', 'sports'),
    (39, 'baseball bat', 'sports'), (40, 'baseball glove', 'sports'),
    (41, 'skateboard', 'sports'), (42, 'surfboard', 'sports'),
    (43, 'tennis racket', 'sports'), (44, 'bottle', 'kitchen'),
    (46, 'wine glass', 'kitchen'), (47, 'cup', 'kitchen'), (48, 'fork', 'kitchen'),
    (49, 'knife', 'kitchen'), (50, 'spoon', 'kitchen'), (51, 'bowl', 'kitchen'),
    (52, 'banana', 'food'), (53, 'apple', 'food'), (54, 'sandwich', 'food'),
    (55, 'orange', 'food'), (56, 'broccoli', 'food'), (57, 'carrot', 'food'),
    (58, 'hot dog', 'food'), (59, 'pizza', 'food'), (60, 'donut', 'food'),
    (61, 'cake', 'food'), (62, 'chair', 'furniture'), (63, 'couch', 'furniture'),
    (64, 'potted plant', 'furniture'), (65, 'bed', 'furniture'),
    (67, 'dining table', 'furniture'), (70, 'toilet', 'furniture'),
    (72, 'tv', 'electronic'), (73, 'laptop', 'electronic'), (74, 'mouse', 'electronic'),
    (75, 'remote', 'electronic'), (76, 'keyboard', 'electronic'),
    (77, 'cell phone', 'electronic'), (78, 'microwave', 'appliance'),
    (79, 'oven', 'appliance'), (80, 'toaster', 'appliance'), (81, 'sink', 'appliance'),
    (82, 'refrigerator', 'appliance'), (84, 'book', 'indoor'), (85, 'clock', 'indoor'),
    (86, 'vase', 'indoor'), (87, 'scissors', 'indoor'), (88, 'teddy bear', 'indoor'),
    (89, 'hair drier', 'indoor'), (90, 'toothbrush', 'indoor'),
]

Color = Tuple[int, int, int]
Painter = Callable[[int, int, np.random.Generator], np.ndarray]


# --------------------------------------------------------------------------- looks
# A look paints an object's axis-aligned box (h, w) as float RGB; ``base`` covers
# most of every look's area, which makes categories tellable apart by colour alone.

def _solid(h: int, w: int, color: Color) -> np.ndarray:
    return np.broadcast_to(np.array(color, np.float32), (h, w, 3)).copy()


def _person(h, w, rng):
    tex = _solid(h, w, LOOKS['person'].base)
    period = max(4, h // 8)
    tex[(np.arange(h) % period) < period // 3] *= 0.6  # darker horizontal stripes
    return tex


def _car(h, w, rng):
    tex = _solid(h, w, LOOKS['car'].base)
    tex[int(0.12 * h):int(0.38 * h), int(0.15 * w):int(0.85 * w)] = (170, 210, 235)  # windows
    return tex


def _dog(h, w, rng):
    tex = _solid(h, w, LOOKS['dog'].base)
    yy, xx = np.mgrid[:h, :w]
    for _ in range(3):  # dark spots, about a fifth of the area at most
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        r = rng.uniform(0.08, 0.15) * min(h, w)
        tex[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = (60, 40, 20)
    return tex


def _stop_sign(h, w, rng):
    tex = _solid(h, w, LOOKS['stop sign'].base)
    tex[int(0.42 * h):int(0.58 * h), int(0.18 * w):int(0.82 * w)] = (240, 240, 240)
    return tex


def _ball(h, w, rng):
    tex = _solid(h, w, LOOKS['sports ball'].base)
    cell = max(2, min(h, w) // 5)
    yy, xx = np.mgrid[:h, :w]
    tex[((yy // cell) % 2 == 0) & ((xx // cell) % 2 == 0)] = (30, 30, 30)  # sparse black
    return tex


def _kite(h, w, rng):
    tex = _solid(h, w, LOOKS['kite'].base)
    t = max(1, w // 14)
    tex[:, w // 2 - t:w // 2 + t] = (40, 40, 40)  # the cross of spars
    tex[int(0.38 * h) - t:int(0.38 * h) + t, :] = (40, 40, 40)
    return tex


def _pizza(h, w, rng):
    tex = _solid(h, w, LOOKS['pizza'].base)
    yy, xx = np.mgrid[:h, :w]
    for _ in range(4):  # pepperoni
        cy, cx = rng.uniform(0.3, 0.9) * h, rng.uniform(0.2, 0.8) * w
        r = 0.08 * min(h, w)
        tex[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = (170, 35, 30)
    return tex


def _tv(h, w, rng):
    tex = _solid(h, w, (35, 35, 40))  # frame
    bh, bw = max(1, int(0.12 * h)), max(1, int(0.12 * w))
    tex[bh:h - bh, bw:w - bw] = LOOKS['tv'].base  # screen, the larger part
    return tex


def _building(h, w, rng):
    tex = _solid(h, w, LOOKS['building'].base)
    cell = max(6, min(h, w) // 5)
    yy, xx = np.mgrid[:h, :w]
    win = ((yy % cell) >= cell // 3) & ((yy % cell) < 2 * cell // 3) & \
          ((xx % cell) >= cell // 3) & ((xx % cell) < 2 * cell // 3)
    tex[win] = (50, 60, 85)
    return tex


def _speckled(name: str, dark: float) -> Painter:
    def paint(h, w, rng):
        tex = _solid(h, w, LOOKS[name].base)
        tex[rng.random((h, w)) < 0.2] *= dark
        return tex
    return paint


def _sky(h, w, rng):
    top, bottom = np.array((70, 130, 215), np.float32), np.array((165, 200, 240), np.float32)
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    return np.broadcast_to(top * (1 - t) + bottom * t, (h, w, 3)).copy()


def _road(h, w, rng):
    tex = _solid(h, w, LOOKS['road'].base)
    t = max(1, h // 20)
    dash = (np.arange(w) // max(4, w // 12)) % 2 == 0
    tex[h // 2 - t:h // 2 + t, dash] = (235, 235, 225)  # dashed centre line
    return tex


def _sidewalk(h, w, rng):
    tex = _solid(h, w, LOOKS['sidewalk'].base)
    cell = max(6, h // 2)
    tex[:, np.arange(w) % cell == 0] = (120, 115, 110)  # tile joints
    return tex


class Look(NamedTuple):
    base: Color
    paint: Painter


LOOKS: Dict[str, Look] = {
    'person': Look((225, 110, 150), _person),
    'car': Look((40, 70, 190), _car),
    'dog': Look((150, 95, 45), _dog),
    'stop sign': Look((205, 25, 30), _stop_sign),
    'sports ball': Look((235, 235, 235), _ball),
    'kite': Look((240, 210, 30), _kite),
    'pizza': Look((235, 150, 60), _pizza),
    'tv': Look((70, 175, 210), _tv),
    'building': Look((175, 125, 95), _building),
    'sky': Look((120, 165, 228), _sky),  # base = mid gradient, for reference only
    'tree': Look((40, 120, 45), _speckled('tree', 0.55)),
    'trunk': Look((100, 70, 40), lambda h, w, rng: _solid(h, w, LOOKS['trunk'].base)),
    'grass': Look((95, 170, 60), _speckled('grass', 0.7)),
    'road': Look((95, 95, 100), _road),
    'sidewalk': Look((185, 180, 170), _sidewalk),
}


# ------------------------------------------------------------------------- shapes
# Shapes are polygons centred on the origin (x, y), shape (N, 2); a polygon is both
# what is drawn and what COCO's ``segmentation`` stores.

def _ellipse(w: float, h: float, n: int = 28) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([0.5 * w * np.cos(t), 0.5 * h * np.sin(t)], 1)


def _rect(w: float, h: float) -> np.ndarray:
    return np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) * 0.5


def _octagon(w: float, h: float) -> np.ndarray:
    t = np.pi / 8 + np.arange(8) * np.pi / 4
    return np.stack([0.5 * w * np.cos(t), 0.5 * h * np.sin(t)], 1)


def _diamond(w: float, h: float) -> np.ndarray:
    return np.array([[0, -0.5 * h], [0.5 * w, -0.12 * h], [0, 0.5 * h], [-0.5 * w, -0.12 * h]])


def _triangle(w: float, h: float) -> np.ndarray:
    return np.array([[-0.5 * w, -0.5 * h], [0.5 * w, -0.5 * h], [0, 0.5 * h]])


def _rotate(poly: np.ndarray, degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return poly @ rot.T


class CocoLook(NamedTuple):
    name: str
    shape: Callable[[float, float], np.ndarray]
    aspect: Tuple[float, float]  # range of height / width
    max_rotation: float  # degrees


# The drawn COCO categories, each with one shape, aspect range and look.
COCO_DRAWN = [
    CocoLook('person', _ellipse, (2.2, 2.8), 8),
    CocoLook('car', _rect, (0.42, 0.55), 6),
    CocoLook('dog', _ellipse, (0.6, 0.75), 12),
    CocoLook('stop sign', _octagon, (1.0, 1.0), 0),
    CocoLook('sports ball', _ellipse, (1.0, 1.0), 0),
    CocoLook('kite', _diamond, (1.4, 1.7), 15),
    CocoLook('pizza', _triangle, (0.8, 1.0), 20),
    CocoLook('tv', _rect, (0.7, 0.8), 0),
]

# ADE20K classes drawn, as label values in the PNGs (1-based: the class index in
# mmseg's ADE20KDataset.METAINFO['classes'] plus one).
ADE_LABELS = {'building': 2, 'sky': 3, 'tree': 5, 'road': 7, 'grass': 10,
              'sidewalk': 12, 'person': 13, 'car': 21}


# ------------------------------------------------------------------------ drawing

def _image_size(size: int, rng: np.random.Generator) -> Tuple[int, int]:
    """(width, height): long side ``size``, landscape, portrait or square."""
    short = int(round(size * 0.75))
    return [(size, short), (short, size), (size, size)][int(rng.integers(3))]


def _polygon_mask(poly: np.ndarray, width: int, height: int) -> np.ndarray:
    canvas = Image.new('L', (width, height), 0)
    ImageDraw.Draw(canvas).polygon([tuple(p) for p in poly.tolist()], fill=1)
    return np.asarray(canvas, dtype=bool)


def _paint(img: np.ndarray, mask: np.ndarray, look: Look, rng: np.random.Generator,
           jitter: float = 0.06) -> None:
    """Paint ``look`` into ``img`` where ``mask`` is set (texture in the mask's box)."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    tex = look.paint(int(y1 - y0), int(x1 - x0), rng) * rng.uniform(1 - jitter, 1 + jitter)
    m = mask[y0:y1, x0:x1]
    img[y0:y1, x0:x1][m] = tex[m]


def _background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A dull, low-saturation gradient so that no object colour is confusable with it."""
    c0 = rng.uniform(70, 170) + rng.uniform(-12, 12, 3)
    c1 = rng.uniform(70, 170) + rng.uniform(-12, 12, 3)
    horizontal = rng.random() < 0.5
    t = np.linspace(0, 1, width if horizontal else height)[:, None]
    grad = c0 * (1 - t) + c1 * t  # (n, 3)
    grad = grad[None] if horizontal else grad[:, None]
    return np.broadcast_to(grad, (height, width, 3)).astype(np.float32)


def _finish(img: np.ndarray, rng: np.random.Generator) -> Image.Image:
    img = img + rng.normal(0, 4, img.shape)
    return Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8), 'RGB')


def _place(extent: np.ndarray, width: int, height: int, boxes: List[np.ndarray],
           rng: np.random.Generator, margin: float = 3, tries: int = 30) -> Optional[np.ndarray]:
    """An offset putting a shape with ``extent`` (x0, y0, x1, y1 around the origin)
    inside the image without touching ``boxes``; None when there is no room.

    Objects never overlap, so a polygon is exactly the visible object (COCO masks are
    visible regions, and occlusion would make the earlier polygon wrong)."""
    lo = np.array([margin - extent[0], margin - extent[1]])
    hi = np.array([width - margin - extent[2], height - margin - extent[3]])
    if np.any(hi <= lo):
        return None
    for _ in range(tries):
        off = rng.uniform(lo, hi)
        box = extent + np.tile(off, 2)
        if all(box[0] >= b[2] + margin or box[2] + margin <= b[0] or
               box[1] >= b[3] + margin or box[3] + margin <= b[1] for b in boxes):
            boxes.append(box)
            return off
    return None


def _coco_image(rng: np.random.Generator, size: int, crowd: bool):
    """One COCO image: (PIL image, list of (category name, polygon or RLE mask))."""
    from pycocotools import mask as mask_utils

    width, height = _image_size(size, rng)
    img = _background(width, height, rng)
    boxes: List[np.ndarray] = []
    objects = []
    short = min(width, height)
    if crowd:
        # A person crowd: many small overlapping people annotated as ONE iscrowd=1
        # region with an RLE mask (their union), as in real COCO.
        cw, ch = rng.uniform(0.3, 0.45) * width, rng.uniform(0.2, 0.3) * height
        off = _place(np.array([0, 0, cw, ch]), width, height, boxes, rng)
        if off is not None:
            union = np.zeros((height, width), bool)
            for _ in range(int(rng.integers(6, 13))):
                ph = rng.uniform(0.6, 1.0) * ch
                pw = ph / rng.uniform(2.2, 2.8)
                centre = off + [rng.uniform(pw / 2, cw - pw / 2), ch - ph / 2]
                mask = _polygon_mask(_ellipse(pw, ph) + centre, width, height)
                _paint(img, mask, LOOKS['person'], rng)
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
        poly = _rotate(spec.shape(w, h), rng.uniform(-spec.max_rotation, spec.max_rotation))
        off = _place(np.concatenate([poly.min(0), poly.max(0)]), width, height, boxes, rng)
        if off is None:
            continue
        poly = np.round(poly + off, 2)
        _paint(img, _polygon_mask(poly, width, height), LOOKS[spec.name], rng)
        objects.append((spec.name, poly))
        placed += 1
    return _finish(img, rng), objects


def _coco_split(out_dir: str, split: str, num: int, size: int, seed: int) -> dict:
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


def _ade_image(rng: np.random.Generator, size: int, other: bool):
    """One street-like scene: (PIL image, uint8 label map with ADE20K labels)."""
    width, height = _image_size(size, rng)
    img = np.zeros((height, width, 3), np.float32)
    label = np.zeros((height, width), np.uint8)

    def draw(poly, name, look=None):
        mask = _polygon_mask(np.asarray(poly, np.float64), width, height)
        _paint(img, mask, LOOKS[look or name], rng)
        label[mask] = ADE_LABELS[name]

    def box(x0, y0, x1, y1):
        return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]

    # Painter's order: sky, buildings and trees up to the horizon, then the ground
    # bands, then cars and people in front. Later paint wins in image and label alike.
    horizon = rng.uniform(0.4, 0.6) * height
    draw(box(0, 0, width, horizon), 'sky')
    for _ in range(int(rng.integers(1, 4))):
        bw = rng.uniform(0.15, 0.35) * width
        x0 = rng.uniform(-0.1 * width, width - 0.9 * bw)
        draw(box(x0, horizon - rng.uniform(0.15, 0.38) * height, x0 + bw, horizon), 'building')
    for _ in range(int(rng.integers(0, 3))):
        cx, r = rng.uniform(0, width), rng.uniform(0.05, 0.1) * width
        cy = horizon - rng.uniform(1.2, 2.0) * r
        draw(box(cx - r / 4, cy, cx + r / 4, horizon + 2), 'tree', look='trunk')
        draw(_ellipse(2 * r, 2.4 * r) + [cx, cy], 'tree')
    ground = height - horizon
    y_grass = horizon + rng.uniform(0.15, 0.4) * ground
    y_side = y_grass + (rng.uniform(0.1, 0.2) * ground if rng.random() < 0.6 else 0)
    draw(box(0, horizon, width, y_grass), 'grass')
    if y_side > y_grass:
        draw(box(0, y_grass, width, y_side), 'sidewalk')
    draw(box(0, y_side, width, height), 'road')
    for _ in range(int(rng.integers(0, 3))):
        cw = rng.uniform(0.15, 0.3) * width
        ch = cw * rng.uniform(0.42, 0.55)
        x0 = rng.uniform(0, width - cw)
        bottom = rng.uniform(y_side + 0.5 * ch, height + 0.2 * ch)
        draw(box(x0, bottom - ch, x0 + cw, bottom), 'car')
    for _ in range(int(rng.integers(0, 4))):
        ph = rng.uniform(0.15, 0.35) * height
        pw = ph / rng.uniform(2.2, 2.8)
        feet = rng.uniform(horizon, max(y_side, horizon + 0.3 * ground))
        draw(_ellipse(pw, ph) + [rng.uniform(0, width), feet - ph / 2], 'person')
    if other:
        # A blob of noise labelled 0 ("other"): mmseg's reduce_zero_label makes it 255.
        r = rng.uniform(0.08, 0.15) * min(width, height)
        t = np.sort(rng.uniform(0, 2 * np.pi, 6))
        poly = np.stack([np.cos(t), np.sin(t)], 1) * r * rng.uniform(0.6, 1.0, (6, 1))
        mask = _polygon_mask(poly + [rng.uniform(r, width - r), rng.uniform(r, height - r)],
                             width, height)
        img[mask] = rng.uniform(0, 255, (int(mask.sum()), 3))
        label[mask] = 0
    return _finish(img, rng), Image.fromarray(label, 'L')


def _ade_split(out_dir: str, split: str, num: int, size: int, seed: int) -> None:
    split_code, folder, prefix = {'train': (0, 'training', 'ADE_train'),
                                  'val': (1, 'validation', 'ADE_val')}[split]
    img_dir = osp.join(out_dir, 'ADEChallengeData2016', 'images', folder)
    ann_dir = osp.join(out_dir, 'ADEChallengeData2016', 'annotations', folder)
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(ann_dir, exist_ok=True)
    for i in range(num):
        rng = np.random.default_rng([seed, 1, split_code, i])
        pil, label = _ade_image(rng, size, other=(i % 2 == 0))
        name = f'{prefix}_{i + 1:08d}'
        pil.save(osp.join(img_dir, name + '.jpg'), quality=92)
        label.save(osp.join(ann_dir, name + '.png'))


# ---------------------------------------------------------- stamping and swapping

def _check_params(num_train, num_val, image_size, seed) -> dict:
    for field, value, low in (('num_train', num_train, 1), ('num_val', num_val, 1),
                              ('image_size', image_size, 64), ('seed', seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f'{field} must be an int, got {type(value).__name__}')
        if value < low:
            raise ValueError(f'{field} must be >= {low}, got {value}')
    if image_size > 4096:
        raise ValueError(f'image_size must be <= 4096, got {image_size}')
    return dict(num_train=int(num_train), num_val=int(num_val),
                image_size=int(image_size), seed=int(seed))


def _list_files(root: str) -> Dict[str, int]:
    files = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = osp.join(dirpath, name)
            files[osp.relpath(path, root).replace(os.sep, '/')] = osp.getsize(path)
    return dict(sorted(files.items()))


def read_stamp(root: str) -> Optional[dict]:
    """The stamp of a set made by this script, or None when there is none."""
    try:
        with open(osp.join(root, STAMP)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _is_complete(root: str, stamp: Optional[dict], kind: str, params: dict) -> Tuple[bool, str]:
    """Whether ``root`` holds a complete set of ``kind`` made with ``params``, and if
    not, why (the reason a rewrite gives)."""
    if stamp is None:
        return False, 'new'
    if (stamp.get('kind'), stamp.get('format_version'), stamp.get('params')) != \
            (kind, FORMAT_VERSION, params):
        return False, (f"replaced the set made with "
                       f"{stamp.get('params')}, format {stamp.get('format_version')}")
    for rel, size in stamp.get('files', {}).items():
        path = osp.join(root, rel)
        if not osp.isfile(path) or osp.getsize(path) != size:
            return False, f'replaced an incomplete set: {rel} was missing or changed'
    return True, 'complete'


def _generate(root: str, kind: str, params: dict, force: bool,
              write: Callable[[str], None]) -> dict:
    """Write a set with ``write(scratch_dir)`` and move it to ``root`` when complete.

    Only ``root`` itself is replaced, and only when it is empty or carries our stamp:
    a directory with other content (e.g. the real dataset) is never deleted.
    """
    root = osp.abspath(root)
    stamp = read_stamp(root)
    complete, reason = _is_complete(root, stamp, kind, params)
    if complete and not force:
        return dict(root=root, written=False, reason='already complete, same parameters')
    if stamp is not None and stamp.get('kind') != kind:
        raise FileExistsError(
            f"{root} holds a synthetic {stamp.get('kind')} set, not {kind}: pass another path")
    if stamp is None and osp.isdir(root) and os.listdir(root):
        raise FileExistsError(
            f'{root} is not empty and was not made by this script (no {STAMP}); '
            'refusing to overwrite it: remove it or pass another path')
    if osp.exists(root) and not osp.isdir(root):
        raise FileExistsError(f'{root} exists and is not a directory')
    parent, name = osp.split(root)
    os.makedirs(parent, exist_ok=True)
    scratch = osp.join(parent, f'.{name}.protune_partial')
    old = osp.join(parent, f'.{name}.protune_old')
    for leftover in (scratch, old):  # from an interrupted earlier run
        if osp.exists(leftover):
            shutil.rmtree(leftover)
    os.makedirs(scratch)
    write(scratch)
    # The stamp goes last: it lists every file, so a set missing one is incomplete.
    # ``generator`` names the command line, as in stamps written before the move.
    new_stamp = dict(generator='tools/make_synthetic_data.py', kind=kind,
                     format_version=FORMAT_VERSION, params=params, files=_list_files(scratch))
    with open(osp.join(scratch, STAMP), 'w') as f:
        json.dump(new_stamp, f, indent=1)
        f.write('\n')
    if osp.exists(root):
        os.rename(root, old)
    os.rename(scratch, root)
    if osp.exists(old):
        shutil.rmtree(old)
    return dict(root=root, written=True, reason='forced' if complete else reason)


def make_coco(root: str = 'data/coco', num_train: int = 40, num_val: int = 8,
              image_size: int = 320, seed: int = 0, force: bool = False) -> dict:
    """Write a synthetic COCO 2017 instance-segmentation set under ``root``.

    Returns ``dict(root, written, reason)``; ``written`` is False when ``root``
    already held a complete set with the same parameters (and ``force`` is False).
    """
    params = _check_params(num_train, num_val, image_size, seed)

    def write(out):
        os.makedirs(osp.join(out, 'annotations'))
        for split, num in (('train', num_train), ('val', num_val)):
            data = _coco_split(out, split, num, image_size, seed)
            with open(osp.join(out, 'annotations', f'instances_{split}2017.json'), 'w') as f:
                json.dump(data, f, separators=(',', ':'))

    return _generate(root, 'coco', params, force, write)


def make_ade20k(root: str = 'data/ade', num_train: int = 40, num_val: int = 8,
                image_size: int = 320, seed: int = 0, force: bool = False) -> dict:
    """Write a synthetic ADE20K (ADEChallengeData2016) set under ``root``.

    Returns ``dict(root, written, reason)`` like :func:`make_coco`.
    """
    params = _check_params(num_train, num_val, image_size, seed)

    def write(out):
        for split, num in (('train', num_train), ('val', num_val)):
            _ade_split(out, split, num, image_size, seed)

    return _generate(root, 'ade20k', params, force, write)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write deterministic synthetic data in the COCO 2017 and ADE20K '
                    'layouts, loadable by the stock mmdet / mmseg dataset configs.')
    parser.add_argument('--coco', default='data/coco', help='COCO root (default: data/coco)')
    parser.add_argument('--ade', default='data/ade',
                        help='ADE20K root; images go to <root>/ADEChallengeData2016 '
                             '(default: data/ade)')
    parser.add_argument('--only', choices=['coco', 'ade'], help='write only this dataset')
    parser.add_argument('--num-train', type=int, default=40, help='training images per dataset')
    parser.add_argument('--num-val', type=int, default=8, help='validation images per dataset')
    parser.add_argument('--size', type=int, default=320, help='long image side in pixels')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--force', action='store_true',
                        help='rewrite even when a complete set with the same parameters exists')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    jobs = [('COCO', make_coco, args.coco), ('ADE20K', make_ade20k, args.ade)]
    for title, make, root in jobs:
        if args.only and not title.lower().startswith(args.only):
            continue
        try:
            result = make(root, args.num_train, args.num_val, args.size, args.seed,
                          force=args.force)
        except (ValueError, TypeError, FileExistsError) as err:
            raise SystemExit(f'{title}: {err}')
        what = (f'wrote {args.num_train} train + {args.num_val} val images ({result["reason"]})'
                if result['written'] else
                f'skipped: {result["reason"]} (use --force to rewrite)')
        print(f'{title}: {what} -> {result["root"]}')


if __name__ == '__main__':
    main()
