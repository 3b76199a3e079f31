"""VPT pad prompts, as published (official code KMnP/vpt, ``src/models/resnet.py``:
``_setup_prompt_pad``, ``incorporate_prompt``): a learned border of ``num_tokens``
pixels on each side of the image, concatenated around it (no image pixel is
replaced), learned in [0, 1] RGB and normalised with the ImageNet mean/std.
They act on the input alone, so they fit any image backbone.

For dense prediction the features must stay aligned with the image. The image is
placed at an offset ``border``, the smallest multiple of ``pad_align`` (default:
32, or the backbone's largest output stride where larger, probed once at
construction) that holds the prompts; between the prompts and the canvas edge is
the pad value 0, as in mmdet/mmseg's batch padding. Every output whose stride
divides ``border`` then has whole cells of border on each side, and is cropped
back to the bare backbone's cells: same shapes, same alignment. The backbone
computes on ``(H + 2 * border) x (W + 2 * border)`` pixels.

In a batch padded to a common shape, each image's prompts surround its own region
(its ``img_shape``), not the batch tensor: :func:`bind_image_regions` passes the
data samples' ``img_shape`` from the model's forward to these prompts (the
runtime hook ``ImageRegionHook`` does it for runners).
"""
import functools
import math
import warnings
import weakref
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...rebind import Handle
from .common import Built, Mechanism, PromptHolder

# Normalisation of pad prompt pixels (ImageNet, [0, 1] RGB), as in the official
# code's prompt_norm; equal to mmdet/mmseg's default mean/std on 0-255 images.
PAD_MEAN = (0.485, 0.456, 0.406)
PAD_STD = (0.229, 0.224, 0.225)


def pad_border(num_tokens: int, pad_align: int) -> int:
    """Offset of the image in the enlarged input: the prompts' width rounded up
    to a multiple of ``pad_align``."""
    return pad_align * math.ceil(num_tokens / pad_align)


def largest_stride(backbone: nn.Module) -> int:
    """The largest output stride of ``backbone`` (a power of two), from one probe
    forward on a 256 px image (512 if it refuses that)."""
    from ...adapters.modules import probe_forward
    from ...check import _features
    out, size = probe_forward(backbone, (256, 512), channels=[3],
                              what='VPT pad prompts: the probe forward (to find the '
                              'largest output stride; or set VPT.pad_align)')
    cells = min(min(y.shape[-2:]) for y in _features(out))
    return _power_of_two(size / cells)


def _power_of_two(ratio: float) -> int:
    return 2 ** max(0, round(math.log2(ratio)))


class PadPrompts(Mechanism):
    """The pad mechanism: its options, its two prompts, and the two hooks on the
    backbone that enlarge the input with the prompt border, then crop every
    output back to the image's cells. It also holds where each image of the
    current batch is (:attr:`image_regions`, bound by :func:`bind_image_regions`).
    """
    name = 'pad'
    location = 'pad'
    dropout = 0.0  # the official code has none on pad prompts

    def __init__(self, adapter, sites):
        super().__init__(adapter, sites)
        #: each image's (h, w) in the current batch, set for the duration of a
        #: forward by :func:`bind_image_regions`; None: the whole input tensor
        #: is the image.
        self.image_regions = None
        self._region_root = None
        self._region_handles = []
        self._warned_unbound = False

    @classmethod
    def sites_of(cls, adapter):
        return adapter.backbone  # acts on the input alone: any image backbone

    def resolve(self, config, backbone: str) -> dict:
        if config.deep:
            raise ValueError('VPT.deep=True needs a backbone made of blocks (ViT, '
                             f'Swin); {backbone} takes pad prompts: set deep=False or '
                             'leave it None')
        pad_align = config.pad_align
        if config.num_tokens and pad_align is None:
            pad_align = max(32, largest_stride(self.adapter.backbone))
        return dict(deep=False, pad_align=pad_align)

    def build(self, config, method) -> Built:
        p, base = config.num_tokens, config.pad_base
        self.method, self.width, self.pad_align = method, p, config.pad_align
        self.border = pad_border(p, config.pad_align)
        # Official shapes and init: uniform [0, 1) RGB (normalised when used); the
        # top/bottom rows span the corners.
        tb = nn.Parameter(torch.rand(1, 3, 2 * p, base + 2 * p))
        lr = nn.Parameter(torch.rand(1, 3, base, 2 * p))
        prompts = {'pad_tb': PromptHolder(tb), 'pad_lr': PromptHolder(lr)}
        backbone = self.adapter.backbone
        handles = [backbone.register_forward_pre_hook(self.enlarge),
                   backbone.register_forward_hook(self.crop),
                   Handle(functools.partial(PadPrompts.unbind_regions, self))]
        return Built(prompts, handles, {})

    def describe(self) -> str:
        border = getattr(self, 'border', None)
        return 'pad prompts around the input' + (f' (image at a {border} px offset)'
                                                  if border else '')

    def report_notes(self) -> list:
        o = self.border

        def ratio(h, w):
            return (h + 2 * o) * (w + 2 * o) / (h * w)
        return [f'VPT pad prompts ({self.width} px) put each image at a {o} px '
                f'offset: the backbone computes on (H+{2 * o}) x (W+{2 * o}) pixels, '
                f'{ratio(512, 512):.2f}x at 512x512, {ratio(800, 1333):.2f}x at 800x1333']

    # -- where each image is -------------------------------------------------------
    def region_source(self):
        """The model whose forward passes image regions to these prompts, if any."""
        return self._region_root() if self._region_root is not None else None

    def bind_regions_to(self, model: nn.Module, handles: list) -> None:
        self._region_root = weakref.ref(model)
        self._region_handles.extend(handles)

    def unbind_regions(self) -> None:
        for handle in self._region_handles:
            handle.remove()
        self._region_handles, self._region_root = [], None

    def warn_unbound(self) -> None:
        if self._warned_unbound:
            return
        self._warned_unbound = True
        warnings.warn(
            'VPT pad prompts have no image regions bound, so they surround the whole '
            'input tensor: in a batch padded to a common shape, smaller images get '
            'their bottom/right border on the padding. Runners bind them through '
            "protune_mm's runtime hooks (configs/_base_/protune_runtime.py); for "
            'inferencers call protune_mm.bind_image_regions(model).', stacklevel=3)

    # -- the hooks -----------------------------------------------------------------
    def _pixels(self, name: str, size: Tuple[int, int], like: torch.Tensor):
        """Prompt ``name`` (dropped out, ImageNet-normalised) at ``size``."""
        prompt = self.method.dropped(self.method.prompts[name], like)
        mean = prompt.new_tensor(PAD_MEAN).view(1, 3, 1, 1)
        std = prompt.new_tensor(PAD_STD).view(1, 3, 1, 1)
        prompt = (prompt - mean) / std
        if prompt.shape[-2:] != size:
            # Learned at pad_base; images of other sizes get them resized.
            prompt = F.interpolate(prompt, size=size, mode='bilinear',
                                   align_corners=False)
        return prompt

    def _regions(self, x: torch.Tensor) -> List[Tuple[int, int]]:
        b, _, h, w = x.shape
        regions = self.image_regions
        if regions is None:
            self.warn_unbound()
            return [(h, w)] * b
        if len(regions) != b:
            raise ValueError(f'VPT pad prompts: {len(regions)} image regions were '
                             f'bound for a batch of {b} images')
        # A region larger than the tensor: the segmentor's sliding-window crops
        # (each crop is all image) carry the whole image's img_shape.
        return [(min(rh, h), min(rw, w)) for rh, rw in regions]

    def enlarge(self, module, args):
        if not self.method.prompts_enabled:
            return None
        x = args[0]
        b, c, h, w = x.shape
        if c != 3:
            raise ValueError(f'VPT pad prompts are RGB pixels: the backbone input must '
                             f'have 3 channels, got {c}')
        p, o = self.width, self.border
        canvas = F.pad(x, (o, o, o, o))
        regions = self._regions(x)
        groups = {}
        for i, region in enumerate(regions):
            groups.setdefault(region, []).append(i)
        for (rh, rw), index in groups.items():
            tb = self._pixels('pad_tb', (2 * p, rw + 2 * p), x)
            lr = self._pixels('pad_lr', (rh, 2 * p), x)
            sel, n = (slice(None) if len(index) == b else index), len(index)
            # Each image's frame goes around its own region (writes into the
            # padded copy, so autograd sees one CopySlices per band).
            canvas[sel, :, o - p:o, o - p:o + rw + p] = \
                tb[:, :, :p].expand(n, -1, -1, -1)
            canvas[sel, :, o + rh:o + rh + p, o - p:o + rw + p] = \
                tb[:, :, p:].expand(n, -1, -1, -1)
            canvas[sel, :, o:o + rh, o - p:o] = lr[..., :p].expand(n, -1, -1, -1)
            canvas[sel, :, o:o + rh, o + rw:o + rw + p] = lr[..., p:].expand(n, -1, -1,
                                                                             -1)
        return (canvas, ) + tuple(args[1:])

    def crop(self, module, args, output):
        if not self.method.prompts_enabled:
            return None
        size = tuple(args[0].shape[-2:])  # the enlarged input (after ``enlarge``)
        return _map_features(output, lambda y: self._crop(y, size))

    def _crop(self, y: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
        if y.dim() != 4:
            raise ValueError('VPT pad prompts crop (B, C, H, W) feature maps; the '
                             f'backbone returned a tensor of shape {tuple(y.shape)}')
        stride = output_stride(size, y.shape[-2:], self.border)
        if stride is None:
            raise ValueError(
                f'VPT pad prompts: a backbone output of {tuple(y.shape[-2:])} cells for '
                f'an input of {size} px is not at a stride dividing the border of '
                f'{self.border} px, so it cannot be cropped back to the image exactly; '
                'set VPT.pad_align to a multiple of the backbone\'s largest output '
                f'stride (now {self.pad_align})')
        k = self.border // stride
        return y[..., k:y.shape[-2] - k, k:y.shape[-1] - k]


def output_stride(size: Sequence[int], cells: Sequence[int], border: int) -> Optional[int]:
    """The stride s dividing ``border`` at which an input of ``size`` px gives
    ``cells`` (rounded up or down, as convolutions and pooling do), or None.

    Failing that, a power of two s dividing ``border`` with ``cells`` within one
    cell of ``size / s``: ICNet's stride-16 output has H/16 + 1 cells. Growing the
    input by 2 * border then adds 2 * border / s cells, so the crop is exact."""
    for s in range(1, border + 1):
        if border % s:
            continue
        if all(c in (n // s, -(-n // s)) for n, c in zip(size, cells)):
            return s
    s = _power_of_two(size[-1] / cells[-1])
    if not border % s and all(abs(c - n / s) <= 1 for n, c in zip(size, cells)):
        return s
    return None


def _map_features(out, fn):
    if isinstance(out, torch.Tensor):
        return fn(out)
    if isinstance(out, (list, tuple)):
        return type(out)(_map_features(o, fn) for o in out)
    raise TypeError('VPT pad prompts crop tensors or lists/tuples of tensors; the '
                    f'backbone returned {type(out).__name__}')


def bind_image_regions(model: nn.Module) -> list:
    """Let the VPT pad prompts inside ``model`` (an mmdet detector or mmseg
    segmentor) put each image's border around its own region.

    The model's forward reads ``img_shape`` from its ``data_samples`` for the
    duration of the call. Binding twice is a no-op. Returns the hook handles
    (empty if ``model`` has no pad prompts or is bound already).
    """
    pads = [m.mechanism for m in model.modules()
               if isinstance(getattr(m, 'mechanism', None), PadPrompts)
               and m.mechanism.region_source() is not model]
    if not pads:
        return []

    def before(module, args, kwargs):
        samples = kwargs.get('data_samples', args[1] if len(args) > 1 else None)
        regions = None
        if samples and all('img_shape' in s.metainfo for s in samples):
            regions = [tuple(s.metainfo['img_shape'][:2]) for s in samples]
        for m in pads:
            m.image_regions = regions

    def after(module, args, kwargs, output):
        for m in pads:
            m.image_regions = None

    handles = [model.register_forward_pre_hook(before, with_kwargs=True),
               model.register_forward_hook(after, with_kwargs=True, always_call=True)]
    for m in pads:
        m.bind_regions_to(model, handles)
    return handles
