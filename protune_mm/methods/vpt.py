"""Visual Prompt Tuning (Jia et al., ECCV 2022, arXiv 2203.12119; official code
KMnP/vpt): the method, one of four mechanisms chosen by what the backbone's
adapter offers:

- token prompts (``vpt_tokens.py``) for token backbones (TimmViT, mmseg ViT,
  BEiT, MAE),
- window prompts (``vpt_window.py``) for window attention (Swin),
- key/value prompts (``vpt_kv.py``) for spatial-reduction attention (SegFormer's
  MiT, PVT, Twins),
- pad prompts (``vpt_pad.py``) for any other image backbone (ResNet, ...).
"""
import math
import warnings
import weakref
from typing import Optional

import torch
import torch.nn as nn

from ..registry import MODELS
from .base import PromptMethod

LOCATIONS = ('prepend', 'pad')


def vpt_init_bound(patch_size, embed_dim: int) -> float:
    """VPT's uniform init bound sqrt(6 / (3 * ph * pw + d)) (0.0625 for ViT-B/16)."""
    ph, pw = (patch_size, patch_size) if isinstance(patch_size, int) else patch_size
    return math.sqrt(6.0 / float(3 * ph * pw + embed_dim))


class PromptHolder(nn.Module):
    """Holds one prompt tensor as ``.prompt`` (keys end in 'prompt', as VPT's)."""

    def __init__(self, prompt: nn.Parameter):
        super().__init__()
        self.prompt = prompt

    def extra_repr(self):
        return f'prompt: {tuple(self.prompt.shape)}'


@MODELS.register_module()
class VPT(PromptMethod):
    """VPT prompts for a frozen backbone.

    - Token backbones (TimmViT, mmseg VisionTransformer/BEiT/MAE),
      ``location='prepend'``: ``num_tokens`` prompt tokens after CLS/registers,
      before the patch tokens, inserted after the
      position embedding (they get none). With ``deep=True`` every later block
      replaces them with its own prompts, up to the last block whose output the
      backbone returns. Outputs keep their shape.
    - Window attention (Swin), ``location='prepend'``: VPT-deep per block: each
      window attention also attends to the block's prompts. ``deep=False`` is
      refused.
    - Spatial-reduction attention (MiT, PVT, Twins), ``location='prepend'``:
      VPT-deep per block: the block's prompts join the keys/values of its
      attention. ``deep=False`` is refused.
    - Any other image backbone, ``location='pad'``: a learned border of
      ``num_tokens`` pixels around each image, which grows the input; outputs are
      cropped back to the image's cells (see ``vpt_pad.py``). ``deep`` does not
      apply.

    Args:
        backbone (dict): inner backbone config.
        num_tokens (int): prompt tokens per layer, or border width in pixels. 0
            gives the bare frozen backbone. Default 10.
        deep (bool, optional): VPT-deep (token/window prompts). Default: True
            there, False for pad prompts.
        dropout (float, optional): dropout on prompts, in [0, 1). Default: 0.1
            for token/window prompts, 0 for pad prompts (the official code has
            none there).
        location (str, optional): 'prepend' or 'pad'; default by backbone.
        pad_base (int): pad prompts are learned for images of this side length
            and resized to each image's sides (the official code's crop size).
            Default 224.
        pad_align (int, optional): pad prompts: the image sits at an offset
            that is the smallest multiple of this holding the prompts, so every
            output stride that divides it keeps whole cells (outputs are cropped
            back). Default: 32, or the backbone's largest output stride where
            that is larger (64 for RTMDet-P6), found by one probe forward at
            construction. Not smaller by default: backbones may downsample
            inside beyond their outputs (ERFNet: 1/8 inside, outputs at 1/2), and
            the border must be whole cells there too. A dilated ResNetV1c (every
            stride at most 8) is exact with 8, a cheaper border.
        pretrained, init_cfg, memory_efficient: see :class:`PromptMethod`.
    """
    method = 'vpt'

    def __init__(self, backbone: dict, num_tokens: int = 10,
                 deep: Optional[bool] = None, dropout: Optional[float] = None,
                 location: Optional[str] = None, pad_base: int = 224,
                 pad_align: Optional[int] = None,
                 pretrained: Optional[str] = None, init_cfg: Optional[dict] = None,
                 memory_efficient: Optional[bool] = None):
        if isinstance(num_tokens, bool) or not isinstance(num_tokens, int) \
                or num_tokens < 0:
            raise ValueError(f'VPT.num_tokens must be an int >= 0, got {num_tokens!r}')
        if dropout is not None and (isinstance(dropout, bool) or not isinstance(
                dropout, (int, float)) or not 0 <= dropout < 1):
            raise ValueError(f'VPT.dropout must be a float in [0, 1), got {dropout!r}')
        if deep not in (None, True, False):
            raise TypeError(f'VPT.deep must be True, False or None (auto), got {deep!r}')
        if location not in (None, ) + LOCATIONS:
            raise ValueError(f'VPT.location must be one of {LOCATIONS} or None (by '
                             f'backbone), got {location!r}')
        if isinstance(pad_base, bool) or not isinstance(pad_base, int) or pad_base < 1:
            raise ValueError(f'VPT.pad_base must be a positive int, got {pad_base!r}')
        if pad_align is not None and (isinstance(pad_align, bool) or not isinstance(
                pad_align, int) or pad_align < 1):
            raise ValueError(f'VPT.pad_align must be a positive int or None (32, or '
                             "the backbone's largest output stride where larger), got "
                             f'{pad_align!r}')
        super().__init__(backbone, pretrained=pretrained, init_cfg=init_cfg,
                         memory_efficient=memory_efficient)
        adapter = self.adapter
        if adapter.token_sites() is not None:
            self.mechanism = 'tokens'
        elif adapter.window_sites() is not None:
            self.mechanism = 'window'
        elif adapter.kv_sites() is not None:
            self.mechanism = 'kv'
        else:
            self.mechanism = 'pad'
        allowed = 'pad' if self.mechanism == 'pad' else 'prepend'
        location = allowed if location is None else location
        if location != allowed:
            raise ValueError(f"VPT.location must be '{allowed}' (or None) for "
                             f'{type(self.backbone).__name__}, got {location!r}')
        if self.mechanism == 'pad' and deep:
            raise ValueError('VPT.deep=True needs a backbone made of blocks (ViT, '
                             f'Swin); {type(self.backbone).__name__} takes pad '
                             'prompts: set deep=False or leave it None')
        if self.mechanism == 'window' and deep is False and num_tokens:
            raise ValueError(
                'VPT.deep must be True for window-attention backbones (Swin: VPT-deep, '
                'own prompts in every block); VPT-shallow is not supported there, '
                'got deep=False')
        if self.mechanism == 'kv' and deep is False and num_tokens:
            raise ValueError(
                'VPT.deep must be True for spatial-reduction attention backbones '
                f'({type(self.backbone).__name__}: own key/value prompts in every '
                'block); VPT-shallow is not supported there, got deep=False')
        deep = self.mechanism != 'pad' if deep is None else deep
        if dropout is None:
            dropout = 0.0 if self.mechanism == 'pad' else 0.1
        self.num_tokens, self.deep = num_tokens, deep
        if self.mechanism == 'pad' and num_tokens and pad_align is None:
            from .vpt_pad import largest_stride
            pad_align = max(32, largest_stride(self.backbone))
        self.pad_base, self.pad_align = pad_base, pad_align
        self.resolve_config(deep=deep, location=location, dropout=dropout,
                            pad_align=pad_align)
        self.prompt_dropout = nn.Dropout(dropout)
        #: pad prompts: each image's (h, w) in the current batch, set for the
        #: duration of a forward by ``vpt_pad.bind_image_regions``; None: the
        #: whole input tensor is the image.
        self.image_regions = None
        self._region_root = None
        self._warned_unbound = False

    def inject(self) -> list:
        if self.num_tokens == 0:
            return []
        if self.mechanism == 'tokens':
            from .vpt_tokens import inject_token_prompts
            return inject_token_prompts(self)
        if self.mechanism == 'window':
            from .vpt_window import inject_window_prompts
            return inject_window_prompts(self)
        if self.mechanism == 'kv':
            from .vpt_kv import inject_kv_prompts
            return inject_kv_prompts(self)
        from .vpt_pad import inject_pad_prompts
        return inject_pad_prompts(self)

    def report_notes(self):
        if self.mechanism != 'pad' or not self.num_tokens:
            return []
        from .vpt_pad import pad_border
        o = pad_border(self.num_tokens, self.pad_align)

        def ratio(h, w):
            return (h + 2 * o) * (w + 2 * o) / (h * w)
        return [f'VPT pad prompts ({self.num_tokens} px) put each image at a {o} px '
                f'offset: the backbone computes on (H+{2 * o}) x (W+{2 * o}) pixels, '
                f'{ratio(512, 512):.2f}x at 512x512, {ratio(800, 1333):.2f}x at 800x1333']

    # -- pad prompts: where each image is ------------------------------------------------
    def region_source(self):
        """The model whose forward passes image regions to these prompts, if any."""
        return self._region_root() if self._region_root is not None else None

    def bind_regions_to(self, model: nn.Module, handles: list) -> None:
        self._region_root = weakref.ref(model)
        self._handles.extend(handles)  # removed with the method

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

    def dropped(self, holder: PromptHolder, like: torch.Tensor) -> torch.Tensor:
        """A prompt through the prompt dropout, in ``like``'s dtype."""
        return self.prompt_dropout(holder.prompt).to(like.dtype)
