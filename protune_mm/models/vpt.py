"""Visual Prompt Tuning (Jia et al., ECCV 2022, arXiv 2203.12119; official code
KMnP/vpt) around a frozen TimmViT, Swin or ResNet-family backbone."""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import MODELS
from .stages import backbone_family
from .wrapper import FrozenBackboneWrapper

# Normalisation of pad prompt pixels (ImageNet, [0, 1] RGB), as in the official
# code's prompt_norm; equal to mmdet/mmseg's default mean/std on 0-255 images.
PAD_MEAN = (0.485, 0.456, 0.406)
PAD_STD = (0.229, 0.224, 0.225)


def vpt_init_bound(patch_size, embed_dim: int) -> float:
    """VPT's uniform init bound sqrt(6 / (3 * ph * pw + d)) (0.0625 for ViT-B/16)."""
    ph, pw = (patch_size, patch_size) if isinstance(patch_size, int) else patch_size
    return math.sqrt(6.0 / float(3 * ph * pw + embed_dim))


@MODELS.register_module()
class VPT(FrozenBackboneWrapper):
    """VPT prompts for a frozen backbone.

    - TimmViT: ``num_tokens`` prompt tokens after CLS/registers, before the patch
      tokens, inserted after the position embedding (they get none). With
      ``deep=True`` every later block replaces them with its own prompts. The
      backbone keeps only the last H*W (patch) tokens for its maps, so outputs
      have the shape they have without prompts.
    - Swin: VPT-deep per block (see ``vpt_swin.py``): each window attention
      also attends to the block's prompts; outputs keep their shape.
      ``deep=False`` is refused (ValueError).
    - ResNet family, ``location='pad'``: learnable pixels on a border band of
      width ``num_tokens`` of the input image. The official code enlarges the
      image instead; for dense prediction we *replace* the band, so every feature
      map keeps exactly its size and alignment (boxes and masks stay where they
      are). As in the official code the pixels are learned in [0, 1] RGB and
      normalised with the ImageNet mean/std (``PAD_MEAN``/``PAD_STD``), i.e. the
      normalisation of mmdet/mmseg's default data preprocessors. ``deep`` does
      not apply.

    Args:
        backbone (dict): inner backbone config.
        num_tokens (int): prompt tokens per layer (ViT/Swin) or band width in
            pixels (ResNet). 0 gives the bare frozen backbone. Default 10.
        deep (bool, optional): VPT-deep (ViT/Swin). Default: True for ViT/Swin,
            False for ResNet (which has no deep variant).
        dropout (float): dropout on prompts, in [0, 1). Default 0.1.
        location (str): 'prepend' (ViT/Swin) or 'pad' (ResNet); default by family.
        pad_base (int): ResNet pad prompts are learned at this length and resized
            to each image's sides (the official code's crop size). Default 224.
        pretrained (str, optional): checkpoint of the inner backbone (see
            :class:`FrozenBackboneWrapper`).
    """
    method = 'vpt'

    def __init__(self, backbone: dict, num_tokens: int = 10,
                 deep: Optional[bool] = None, dropout: float = 0.1,
                 location: Optional[str] = None, pad_base: int = 224,
                 pretrained: Optional[str] = None, init_cfg: Optional[dict] = None,
                 memory_efficient: bool = False):
        if isinstance(num_tokens, bool) or not isinstance(num_tokens, int) \
                or num_tokens < 0:
            raise ValueError(f'VPT.num_tokens must be an int >= 0, got {num_tokens!r}')
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) \
                or not 0 <= dropout < 1:
            raise ValueError(f'VPT.dropout must be a float in [0, 1), got {dropout!r}')
        if deep not in (None, True, False):
            raise TypeError(f'VPT.deep must be True, False or None (auto), got {deep!r}')
        if isinstance(pad_base, bool) or not isinstance(pad_base, int) or pad_base < 1:
            raise ValueError(f'VPT.pad_base must be a positive int, got {pad_base!r}')
        super().__init__(backbone, pretrained=pretrained, init_cfg=init_cfg,
                         memory_efficient=memory_efficient)
        family = backbone_family(self.backbone)
        allowed = {'TimmViT': 'prepend', 'SwinTransformer': 'prepend', 'ResNet': 'pad'}
        if family is None:
            raise TypeError(
                f'VPT does not support backbone {type(self.backbone).__name__}; '
                f'supported: mmdet/mmseg ResNet family (location=pad), mmdet/mmseg '
                f'SwinTransformer and protune_mm.TimmViT (location=prepend)')
        location = allowed[family] if location is None else location
        if location != allowed[family]:
            raise ValueError(f"VPT.location must be '{allowed[family]}' (or None) for "
                             f'{family}, got {location!r}')
        if family == 'ResNet' and deep:
            raise ValueError('VPT.deep=True needs a backbone made of blocks (ViT, '
                             'Swin); a ResNet takes pad prompts: set deep=False or '
                             'leave it None')
        deep = family != 'ResNet' if deep is None else deep
        self._cfg = dict(num_tokens=num_tokens, deep=deep, dropout=dropout,
                         location=location, pad_base=pad_base)
        self.family = family
        self.prompt_dropout = nn.Dropout(dropout)
        if num_tokens == 0:
            return
        if family == 'TimmViT':
            self._add_vit_prompts(num_tokens, deep)
        elif family == 'SwinTransformer':
            from .vpt_swin import add_swin_prompts
            add_swin_prompts(self, num_tokens, deep)
        else:
            self._add_pad_prompts(num_tokens, pad_base)

    def method_config(self) -> dict:
        return dict(self._cfg)

    # -- ViT -----------------------------------------------------------------------
    def _add_vit_prompts(self, num_tokens: int, deep: bool):
        vit = self.backbone
        bound = vpt_init_bound(vit.patch_size, vit.embed_dim)
        layers = len(vit.blocks) if deep else 1
        for i in range(layers):
            p = nn.Parameter(torch.empty(1, num_tokens, vit.embed_dim))
            nn.init.uniform_(p, -bound, bound)
            self.prompts[f'block{i}'] = _ParamHolder(p)
            vit.blocks[i].register_forward_pre_hook(
                _ViTPromptHook(self, self.prompts[f'block{i}'], insert=(i == 0)))

    # -- ResNet --------------------------------------------------------------------
    def _add_pad_prompts(self, width: int, base: int):
        # Official init: uniform [0, 1) RGB pixels (normalised in the hook).
        tb = nn.Parameter(torch.rand(1, 3, 2 * width, base))
        lr = nn.Parameter(torch.rand(1, 3, base, 2 * width))
        self.prompts['pad_tb'] = _ParamHolder(tb)
        self.prompts['pad_lr'] = _ParamHolder(lr)
        self.backbone.register_forward_pre_hook(_PadPromptHook(self, width))


class _ParamHolder(nn.Module):
    """Holds one prompt tensor as ``.prompt`` (keys end in 'prompt', as VPT's)."""

    def __init__(self, prompt: nn.Parameter):
        super().__init__()
        self.prompt = prompt

    def extra_repr(self):
        return f'prompt: {tuple(self.prompt.shape)}'


class _ViTPromptHook:
    """Before a block: insert (first block) or replace (deep) the prompt tokens,
    which sit right after the backbone's prefix (CLS/register) tokens."""

    def __init__(self, wrapper: VPT, holder: _ParamHolder, insert: bool):
        self.wrapper, self.holder, self.insert = wrapper, holder, insert

    def __call__(self, module, args):
        x = args[0]
        start = self.wrapper.backbone.num_prefix_tokens
        p = self.wrapper.prompt_dropout(self.holder.prompt).expand(x.shape[0], -1, -1)
        end = start if self.insert else start + p.shape[1]
        return (torch.cat([x[:, :start], p.to(x.dtype), x[:, end:]], dim=1), ) + \
            tuple(args[1:])


class _PadPromptHook:
    """Before the ResNet: overwrite a border band of the image with prompt pixels."""

    def __init__(self, wrapper: VPT, width: int):
        self.wrapper, self.width = wrapper, width

    def _pixels(self, name, size, like):
        """Prompt ``name`` (dropped out, ImageNet-normalised) resized to ``size``."""
        prompt = self.wrapper.prompt_dropout(self.wrapper.prompts[name].prompt)
        mean = prompt.new_tensor(PAD_MEAN).view(1, 3, 1, 1)
        std = prompt.new_tensor(PAD_STD).view(1, 3, 1, 1)
        prompt = (prompt - mean) / std
        if prompt.shape[-2:] != size:
            prompt = F.interpolate(prompt, size=size, mode='bilinear',
                                   align_corners=False)
        return prompt.to(like.dtype)

    def __call__(self, module, args):
        x = args[0]
        b, c, h, w = x.shape
        p = self.width
        if c != 3 or h <= 2 * p or w <= 2 * p:
            raise ValueError(f'VPT pad prompts of width num_tokens={p} need RGB images '
                             f'larger than {2 * p}x{2 * p}, got {c}x{h}x{w}')
        tb = self._pixels('pad_tb', (2 * p, w), x)
        lr = self._pixels('pad_lr', (h - 2 * p, 2 * p), x)
        middle = torch.cat([lr[..., :p].expand(b, -1, -1, -1),
                            x[:, :, p:h - p, p:w - p],
                            lr[..., p:].expand(b, -1, -1, -1)], dim=3)
        x = torch.cat([tb[:, :, :p].expand(b, -1, -1, -1), middle,
                       tb[:, :, p:].expand(b, -1, -1, -1)], dim=2)
        return (x, ) + tuple(args[1:])
