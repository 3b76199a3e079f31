"""The look of each drawn category: a painter of an object's box, and its base colour."""
from typing import Callable, Dict, NamedTuple, Tuple

import numpy as np

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
