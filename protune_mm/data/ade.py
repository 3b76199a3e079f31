"""The synthetic ADE20K set: street-like scenes with label maps."""
import os
import os.path as osp

import numpy as np
from PIL import Image

from .draw import ellipse, finish, image_size, paint, polygon_mask
from .looks import LOOKS

# ADE20K classes drawn, as label values in the PNGs (1-based: the class index in
# mmseg's ADE20KDataset.METAINFO['classes'] plus one).
ADE_LABELS = {'building': 2, 'sky': 3, 'tree': 5, 'road': 7, 'grass': 10,
              'sidewalk': 12, 'person': 13, 'car': 21}


def _ade_image(rng: np.random.Generator, size: int, other: bool):
    """One street-like scene: (PIL image, uint8 label map with ADE20K labels)."""
    width, height = image_size(size, rng)
    img = np.zeros((height, width, 3), np.float32)
    label = np.zeros((height, width), np.uint8)

    def draw(poly, name, look=None):
        mask = polygon_mask(np.asarray(poly, np.float64), width, height)
        paint(img, mask, LOOKS[look or name], rng)
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
        draw(ellipse(2 * r, 2.4 * r) + [cx, cy], 'tree')
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
        draw(ellipse(pw, ph) + [rng.uniform(0, width), feet - ph / 2], 'person')
    if other:
        # A blob of noise labelled 0 ("other"): mmseg's reduce_zero_label makes it 255.
        r = rng.uniform(0.08, 0.15) * min(width, height)
        t = np.sort(rng.uniform(0, 2 * np.pi, 6))
        poly = np.stack([np.cos(t), np.sin(t)], 1) * r * rng.uniform(0.6, 1.0, (6, 1))
        mask = polygon_mask(poly + [rng.uniform(r, width - r), rng.uniform(r, height - r)],
                            width, height)
        img[mask] = rng.uniform(0, 255, (int(mask.sum()), 3))
        label[mask] = 0
    return finish(img, rng), Image.fromarray(label, 'L')


def write_split(out_dir: str, split: str, num: int, size: int, seed: int) -> None:
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
