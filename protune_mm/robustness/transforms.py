"""``protune_mm.Corrupt``: one corruption at one severity, as a pipeline step of
mmdet and mmseg test pipelines alike (put it right after the image is loaded)."""
import numpy as np
from mmcv.transforms import BaseTransform

from ..registry import TRANSFORMS
from .corruptions import (check_severities, corrupt_image, image_key, image_seed,
                          resolve_corruptions)


@TRANSFORMS.register_module()
class Corrupt(BaseTransform):
    """Corrupt ``results['img']`` in place of the loaded image.

    Args:
        corruption: an ImageNet-C corruption name (see ``corruptions.CORRUPTIONS``).
        severity: 1-5; 0 leaves the image untouched.
        seed: the run's seed; each image's own seed is derived from it, the
            corruption, the severity and the image's file name.
        channel_order: of ``results['img']``: 'bgr' (mmcv's loading default) or
            'rgb'.
    """

    def __init__(self, corruption: str, severity: int, seed: int = 0,
                 channel_order: str = 'bgr'):
        self.corruption = resolve_corruptions([corruption], 'corruption')[0] \
            if severity else corruption
        self.severity = check_severities([severity], 'severity')[0]
        if channel_order not in ('bgr', 'rgb'):
            raise ValueError(f"channel_order: allowed 'bgr' or 'rgb', got {channel_order!r}")
        self.seed = seed
        self.channel_order = channel_order

    def transform(self, results: dict) -> dict:
        if not self.severity:
            return results
        img = results['img']
        dtype, gray = img.dtype, img.ndim == 2
        rgb = np.clip(img, 0, 255).astype(np.uint8) if dtype != np.uint8 else img
        if gray:
            rgb = np.repeat(rgb[..., None], 3, axis=-1)
        elif self.channel_order == 'bgr':
            rgb = rgb[..., ::-1]
        seed = image_seed(self.seed, self.corruption, self.severity, image_key(results))
        out = corrupt_image(rgb, self.corruption, self.severity, seed)
        if gray:
            out = out.mean(axis=-1).round()
        elif self.channel_order == 'bgr':
            out = out[..., ::-1]
        results['img'] = np.ascontiguousarray(out).astype(dtype)
        return results

    def __repr__(self):
        return (f'{type(self).__name__}(corruption={self.corruption!r}, '
                f'severity={self.severity}, seed={self.seed})')
