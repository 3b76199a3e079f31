"""Shapes (polygons around the origin) and the drawing steps shared by both sets,
and by the transfer study's tasks (``polygon_mask``)."""
import math
from typing import List, Optional, Tuple

import numpy as np
from PIL import Image, ImageDraw

from .looks import Look

# ------------------------------------------------------------------------- shapes
# Shapes are polygons centred on the origin (x, y), shape (N, 2); a polygon is both
# what is drawn and what COCO's ``segmentation`` stores.


def ellipse(w: float, h: float, n: int = 28) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([0.5 * w * np.cos(t), 0.5 * h * np.sin(t)], 1)


def rect(w: float, h: float) -> np.ndarray:
    return np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) * 0.5


def octagon(w: float, h: float) -> np.ndarray:
    t = np.pi / 8 + np.arange(8) * np.pi / 4
    return np.stack([0.5 * w * np.cos(t), 0.5 * h * np.sin(t)], 1)


def diamond(w: float, h: float) -> np.ndarray:
    return np.array([[0, -0.5 * h], [0.5 * w, -0.12 * h], [0, 0.5 * h], [-0.5 * w, -0.12 * h]])


def triangle(w: float, h: float) -> np.ndarray:
    return np.array([[-0.5 * w, -0.5 * h], [0.5 * w, -0.5 * h], [0, 0.5 * h]])


def rotate(poly: np.ndarray, degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return poly @ rot.T


# ------------------------------------------------------------------------ drawing

def image_size(size: int, rng: np.random.Generator) -> Tuple[int, int]:
    """(width, height): long side ``size``, landscape, portrait or square."""
    short = int(round(size * 0.75))
    return [(size, short), (short, size), (size, size)][int(rng.integers(3))]


def polygon_mask(points, width: int, height: int) -> np.ndarray:
    """Boolean (height, width) mask of the polygon through ``points`` ((x, y) pairs)."""
    canvas = Image.new('L', (width, height), 0)
    ImageDraw.Draw(canvas).polygon([(float(x), float(y)) for x, y in points], fill=1)
    return np.asarray(canvas, dtype=bool)


def paint(img: np.ndarray, mask: np.ndarray, look: Look, rng: np.random.Generator,
          jitter: float = 0.06) -> None:
    """Paint ``look`` into ``img`` where ``mask`` is set (texture in the mask's box)."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    tex = look.paint(int(y1 - y0), int(x1 - x0), rng) * rng.uniform(1 - jitter, 1 + jitter)
    m = mask[y0:y1, x0:x1]
    img[y0:y1, x0:x1][m] = tex[m]


def background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A dull, low-saturation gradient so that no object colour is confusable with it."""
    c0 = rng.uniform(70, 170) + rng.uniform(-12, 12, 3)
    c1 = rng.uniform(70, 170) + rng.uniform(-12, 12, 3)
    horizontal = rng.random() < 0.5
    t = np.linspace(0, 1, width if horizontal else height)[:, None]
    grad = c0 * (1 - t) + c1 * t  # (n, 3)
    grad = grad[None] if horizontal else grad[:, None]
    return np.broadcast_to(grad, (height, width, 3)).astype(np.float32)


def finish(img: np.ndarray, rng: np.random.Generator) -> Image.Image:
    img = img + rng.normal(0, 4, img.shape)
    return Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8), 'RGB')


def place(extent: np.ndarray, width: int, height: int, boxes: List[np.ndarray],
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
