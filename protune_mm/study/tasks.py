"""Synthetic tasks A ("solid shapes") and B ("textures"): numpy + PIL, deterministic
per seed, in memory."""
import math
from collections import OrderedDict

import numpy as np
import torch

from protune_mm.data.draw import polygon_mask

#: objects drawn per image, in both tasks.
MIN_OBJECTS, MAX_OBJECTS = 2, 5
TASKS = OrderedDict([
    ('A', dict(name='solid shapes', classes=('background', 'disc', 'square'),
               description=f'{MIN_OBJECTS}-{MAX_OBJECTS} discs / rotated squares in '
                           'saturated solid colours on a plain background of one '
                           'random colour; class = shape')),
    ('B', dict(name='textures', classes=('background', 'stripes', 'checks', 'dots'),
               description=f'{MIN_OBJECTS}-{MAX_OBJECTS} triangles / 5-point stars / '
                           'ellipses on a noisy two-colour gradient, filled with a '
                           'texture in two random muted colours, Gaussian noise '
                           '(sigma 10) on every pixel; '
                           'class = texture (stripes, checks, dots), independent of '
                           'shape and colour')),
])


def _polygon_points(cx, cy, r, n, angle, inner_ratio=None):
    """Corners of a regular n-gon around (cx, cy), or of an n-point star whose
    inner corners lie at ``inner_ratio * r``."""
    if inner_ratio is None:
        return [(cx + r * math.cos(angle + 2 * math.pi * k / n),
                 cy + r * math.sin(angle + 2 * math.pi * k / n)) for k in range(n)]
    points = []
    for k in range(2 * n):
        radius = r if k % 2 == 0 else r * inner_ratio
        a = angle + math.pi * k / n
        points.append((cx + radius * math.cos(a), cy + radius * math.sin(a)))
    return points


def _draw_task_a(rng, size):
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    background = rng.integers(0, 256, 3)
    image = np.empty((size, size, 3), np.float32)
    image[:] = background
    label = np.zeros((size, size), np.uint8)
    for _ in range(rng.integers(MIN_OBJECTS, MAX_OBJECTS + 1)):
        cls = int(rng.integers(1, 3))
        r = rng.uniform(0.1, 0.22) * size
        cx, cy = rng.uniform(0.1 * size, 0.9 * size, 2)
        if cls == 1:
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        else:
            mask = polygon_mask(_polygon_points(cx, cy, r * 1.2, 4,
                                                rng.uniform(0, math.pi)), size, size)
        # Saturated colour: one channel high, one low, far from the background.
        while True:
            colour = rng.permutation([rng.uniform(200, 255), rng.uniform(0, 60),
                                      rng.uniform(0, 255)])
            if np.abs(colour - background).sum() > 120:
                break
        image[mask] = colour
        label[mask] = cls
    return image, label


def _texture(cls, rng, size, xx, yy):
    """Boolean texture of class ``cls`` (1 stripes, 2 checks, 3 dots), random
    orientation and scale, over the whole image."""
    s = size / 64  # the scales below are for 64 px images
    angle = rng.uniform(0, math.pi)
    u = xx * math.cos(angle) + yy * math.sin(angle) + rng.uniform(0, 10)
    v = -xx * math.sin(angle) + yy * math.cos(angle) + rng.uniform(0, 10)
    if cls == 1:
        period = max(4.0, rng.uniform(6, 10) * s)
        return (u / period) % 1 < 0.5
    if cls == 2:
        cell = max(2.0, rng.uniform(3, 5) * s)
        return (np.floor(u / cell) + np.floor(v / cell)) % 2 == 0
    spacing = max(4.0, rng.uniform(6, 9) * s)
    du, dv = u % spacing - spacing / 2, v % spacing - spacing / 2
    return du * du + dv * dv < (0.32 * spacing) ** 2


def _draw_task_b(rng, size):
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    # Background: a gradient between two pale colours at a random angle.
    c0, c1 = rng.uniform(90, 230, (2, 3))
    a = rng.uniform(0, 2 * math.pi)
    t = (xx * math.cos(a) + yy * math.sin(a)) / size
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    image = c0 + (c1 - c0) * t[..., None]
    label = np.zeros((size, size), np.uint8)
    for _ in range(rng.integers(MIN_OBJECTS, MAX_OBJECTS + 1)):
        cls = int(rng.integers(1, 4))
        shape = rng.integers(0, 3)
        r = rng.uniform(0.15, 0.3) * size
        cx, cy = rng.uniform(0.1 * size, 0.9 * size, 2)
        if shape == 0:  # triangle
            mask = polygon_mask(_polygon_points(cx, cy, r * 1.2, 3,
                                                rng.uniform(0, 2 * math.pi)), size, size)
        elif shape == 1:  # 5-point star
            mask = polygon_mask(_polygon_points(cx, cy, r * 1.3, 5,
                                                rng.uniform(0, 2 * math.pi), 0.45),
                                size, size)
        else:  # ellipse, rotated
            b = rng.uniform(0, math.pi)
            u = (xx - cx) * math.cos(b) + (yy - cy) * math.sin(b)
            v = -(xx - cx) * math.sin(b) + (yy - cy) * math.cos(b)
            mask = (u / r) ** 2 + (v / (r * rng.uniform(0.5, 0.9))) ** 2 <= 1
        # Two muted colours with visible contrast between them.
        while True:
            fg, bg = rng.uniform(30, 200, (2, 3))
            if np.abs(fg - bg).sum() > 150:
                break
        pattern = _texture(cls, rng, size, xx, yy)
        image[mask] = np.where(pattern[mask, None], fg, bg)
        label[mask] = cls
    image = image + rng.normal(0, 10, image.shape)
    return image, label


def make_task(task: str, num: int, size: int, seed: int):
    """``num`` images (N, H, W, 3) uint8 RGB and label maps (N, H, W) uint8."""
    draw = _draw_task_a if task == 'A' else _draw_task_b
    rng = np.random.default_rng(seed)
    images = np.empty((num, size, size, 3), np.uint8)
    labels = np.empty((num, size, size), np.uint8)
    for i in range(num):
        image, label = draw(rng, size)
        images[i] = np.clip(np.rint(image), 0, 255).astype(np.uint8)
        labels[i] = label
    return images, labels


def task_data(task: str, args):
    """Train and val splits of a task; distinct seeds per task and split. Task B
    trains on its first ``--num-train-b`` images: smaller sets are nested in
    larger ones."""
    base = {'A': 1000, 'B': 2000}[task]
    num_train = args.num_train if task == 'A' else num_train_b(args)
    return dict(train=make_task(task, num_train, args.size, base),
                val=make_task(task, args.num_val, args.size, base + 1),
                classes=TASKS[task]['classes'])


def num_train_b(args) -> int:
    return args.num_train_b or args.num_train


def make_batch(split, indices) -> dict:
    """A batch as an mmseg dataloader gives it: uint8 CHW images + SegDataSamples."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    images, labels = split
    inputs, samples = [], []
    for i in indices:
        inputs.append(torch.from_numpy(images[i]).permute(2, 0, 1).contiguous())
        h, w = labels[i].shape
        sample = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w)))
        sample.gt_sem_seg = PixelData(data=torch.from_numpy(labels[i].astype(np.int64))[None])
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)
