"""Image corruptions of ImageNet-C / COCO-C (Hendrycks & Dietterich 2019; Michaelis
et al. 2019), from the maintained ``imagecorruptions-imaug`` fork of
``imagecorruptions`` (same functions and names; the original 1.1.2 fails on numpy 2
and scikit-image >= 0.19), applied deterministically: each image gets a seed
derived from the run's seed, the corruption, the severity and the image's name.
"""
import os.path as osp
import zlib
from collections import OrderedDict
from typing import List, Sequence

import numpy as np

#: the families of the benchmark, in the order of ImageNet-C, plus the four
#: 'validation' corruptions of ImageNet-C filed under their family.
FAMILIES = OrderedDict([
    ('noise', ('gaussian_noise', 'shot_noise', 'impulse_noise')),
    ('blur', ('defocus_blur', 'glass_blur', 'motion_blur', 'zoom_blur')),
    ('weather', ('snow', 'frost', 'fog', 'brightness')),
    ('digital', ('contrast', 'elastic_transform', 'pixelate', 'jpeg_compression')),
])
EXTRA = OrderedDict([('speckle_noise', 'noise'), ('gaussian_blur', 'blur'),
                     ('spatter', 'weather'), ('saturate', 'digital')])
BENCHMARK = tuple(c for names in FAMILIES.values() for c in names)  # the 15
CORRUPTIONS = BENCHMARK + tuple(EXTRA)
SETS = OrderedDict([('benchmark', BENCHMARK), *FAMILIES.items(),
                    ('all', CORRUPTIONS)])
SEVERITIES = (1, 2, 3, 4, 5)


def family_of(corruption: str) -> str:
    for family, names in FAMILIES.items():
        if corruption in names:
            return family
    return EXTRA[corruption]


def resolve_corruptions(items: Sequence[str], option: str = '--corruptions') -> List[str]:
    """Set names and corruption names -> corruption names, in order, no repeats.
    An empty list means 'clean only'."""
    out = []
    for item in items:
        for name in (item.split(',') if ',' in item else [item]):
            if name in SETS:
                names = SETS[name]
            elif name in CORRUPTIONS:
                names = (name, )
            else:
                raise ValueError(
                    f'{option}: unknown corruption {name!r}; allowed: a set of '
                    f'{list(SETS)} or corruptions {list(CORRUPTIONS)}')
            out.extend(n for n in names if n not in out)
    return out


def check_severities(values: Sequence[int], option: str = '--severities') -> List[int]:
    """0 = clean (no corruption), 1-5 = the benchmark's severities."""
    out = []
    for value in values:
        try:
            severity = int(value)
        except (TypeError, ValueError):
            severity = None
        if severity is None or str(severity) != str(value).strip() \
                or not 0 <= severity <= 5:
            raise ValueError(f'{option}: unknown severity {value!r}; allowed: '
                             f'0 (clean) or {list(SEVERITIES)}')
        if severity not in out:
            out.append(severity)
    return out


def image_seed(seed: int, corruption: str, severity: int, key: str) -> int:
    """A 32-bit seed that depends on the image (by name), not on the order or
    the worker it is loaded in."""
    return zlib.crc32(f'{seed}/{corruption}/{severity}/{key}'.encode()) & 0xFFFFFFFF


def corrupt_image(image: np.ndarray, corruption: str, severity: int,
                  seed: int) -> np.ndarray:
    """``image`` (H, W, 3) uint8 RGB corrupted with ``seed``; severity 0 returns it
    unchanged. numpy's global random state is restored afterwards, so a caller's
    own random stream does not move."""
    if severity == 0:
        return image
    if corruption not in CORRUPTIONS or severity not in SEVERITIES:
        raise ValueError(f'unknown corruption/severity {corruption!r}/{severity!r}')
    from imagecorruptions import corrupt
    # The library draws from numpy's global generator, except impulse_noise and
    # glass_blur, which take their own seed (unseeded, they would differ per run).
    kwargs = dict(seed=seed) if corruption in ('impulse_noise', 'glass_blur') else {}
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        out = corrupt(np.ascontiguousarray(image), severity=severity,
                      corruption_name=corruption, **kwargs)
    finally:
        np.random.set_state(state)
    if out.shape != image.shape:  # some corruptions crop/zoom: keep the input size
        import cv2
        out = cv2.resize(out, (image.shape[1], image.shape[0]),
                         interpolation=cv2.INTER_LINEAR)
    return out


def image_key(results: dict) -> str:
    """The name an image is seeded by: its file name (stable when the data set
    moves), else its index in the data set."""
    path = results.get('img_path')
    if path:
        return osp.basename(str(path))
    return str(results.get('sample_idx', ''))
