"""How each supported backbone family is split into stages.

This is the only place that knows the inside of a backbone. Each family is described
by a function returning one :class:`Stage` per stage; prompt methods attach to the
modules named there with forward hooks, so the inner backbone's own ``forward`` (and
thus its outputs, ``out_indices``, plugins, ...) is used unchanged. Supporting a new
backbone means adding one describer to ``_DESCRIBERS``.
"""
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import torch
import torch.nn as nn


@dataclass
class Stage:
    """One stage of a backbone.

    Attributes:
        name: readable name, e.g. ``'layer2'`` or ``'blocks.3-5'``.
        first: module whose input is the stage input (forward pre-hook target).
        last: module whose output is the stage output (forward hook target).
        in_channels / out_channels: feature widths at stage input / output.
        layout: how the hooked tensors hold the feature map: ``'nchw'`` (a
            (B, C, H, W) map), ``'swin'`` (tokens (B, H*W, C) with ``hw_shape`` as
            the second positional argument) or ``'vit'`` (tokens (B, N, C) whose
            last H*W are patch tokens; H, W from the backbone's ``grid_shape``).
    """
    name: str
    first: nn.Module
    last: nn.Module
    in_channels: int
    out_channels: int
    layout: str


def _is_instance(module, qualnames: Tuple[str, ...]) -> bool:
    """isinstance by class path (module.Class) over the MRO, so subclasses count and
    mmdet / mmseg need not be importable at the same time."""
    names = {f'{c.__module__}.{c.__qualname__}' for c in type(module).__mro__}
    return any(q in names for q in qualnames)


_RESNET = ('mmdet.models.backbones.resnet.ResNet',
           'mmseg.models.backbones.resnet.ResNet')
_SWIN = ('mmdet.models.backbones.swin.SwinTransformer',
         'mmseg.models.backbones.swin.SwinTransformer')
_TIMM_VIT = ('protune_mm.models.timm_vit.TimmViT', )


def _block_widths(block: nn.Module) -> Tuple[int, int]:
    # Bottleneck ends with conv3, BasicBlock with conv2.
    last = block.conv3 if hasattr(block, 'conv3') else block.conv2
    return block.conv1.in_channels, last.out_channels


def _resnet_stages(backbone) -> List[Stage]:
    # mmdet/mmseg ResNet, ResNetV1c, ResNetV1d, ResNeXt: stages are `layer1..4`.
    stages = []
    for name in backbone.res_layers:
        layer = getattr(backbone, name)
        stages.append(Stage(name, layer, layer,
                            _block_widths(layer[0])[0], _block_widths(layer[-1])[1],
                            'nchw'))
    return stages


def _swin_stages(backbone) -> List[Stage]:
    # mmdet/mmseg SwinTransformer: `stages[i]` is called as stage(x, hw_shape) and
    # its blocks as block(x, hw_shape); the stage output is that of its last block
    # (before patch merging).
    stages = []
    for i, stage in enumerate(backbone.stages):
        width = stage.blocks[0].norm1.normalized_shape[0]
        stages.append(Stage(f'stages.{i}', stage, stage.blocks[-1], width, width,
                            'swin'))
    return stages


def _timm_vit_stages(backbone) -> List[Stage]:
    # ViT has no stages: its blocks are split into `num_stages` equal groups.
    groups = vit_block_groups(len(backbone.blocks), backbone.num_stages)
    width = backbone.embed_dim
    return [
        Stage(f'blocks.{g[0]}-{g[-1]}', backbone.blocks[g[0]], backbone.blocks[g[-1]],
              width, width, 'vit') for g in groups
    ]


def vit_block_groups(depth: int, num_groups: int) -> List[List[int]]:
    """Split ``range(depth)`` into ``num_groups`` contiguous groups, as equal as
    possible (earlier groups get the remainder)."""
    if not 1 <= num_groups <= depth:
        raise ValueError(f'num_stages must be in [1, {depth}] (the ViT depth), '
                         f'got {num_groups}')
    base, extra = divmod(depth, num_groups)
    groups, start = [], 0
    for g in range(num_groups):
        size = base + (g < extra)
        groups.append(list(range(start, start + size)))
        start += size
    return groups


_DESCRIBERS: List[Tuple[str, Tuple[str, ...], Callable]] = [
    ('ResNet', _RESNET, _resnet_stages),
    ('SwinTransformer', _SWIN, _swin_stages),
    ('TimmViT', _TIMM_VIT, _timm_vit_stages),
]


def backbone_family(backbone: nn.Module) -> Optional[str]:
    """'ResNet', 'SwinTransformer', 'TimmViT' or None if unsupported."""
    for family, qualnames, _ in _DESCRIBERS:
        if _is_instance(backbone, qualnames):
            return family
    return None


def describe_stages(backbone: nn.Module, method: str = 'prompts') -> List[Stage]:
    """Stages of ``backbone``; a TypeError naming the supported classes otherwise."""
    for _, qualnames, describe in _DESCRIBERS:
        if _is_instance(backbone, qualnames):
            return describe(backbone)
    supported = ', '.join(q for _, qs, _ in _DESCRIBERS for q in qs)
    raise TypeError(
        f'{method} does not support backbone {type(backbone).__module__}.'
        f'{type(backbone).__name__}; supported: {supported} (and their '
        f'subclasses such as ResNetV1c, ResNetV1d, ResNeXt). Describe its stages in '
        f'protune_mm/models/stages.py to add one.')


# ----------------------------------------------------------------------------------
# Feature-map views of hooked tensors, per layout.

def map_apply(layout: str, x: torch.Tensor, hw: Tuple[int, int],
              fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Apply ``fn`` (a map -> map function on (B, C, H, W)) to the feature held by
    ``x`` in ``layout``, returning a tensor in the same layout. For ``'vit'`` only
    the last H*W (patch) tokens are changed; CLS/register/prompt tokens pass."""
    if layout == 'nchw':
        return fn(x)
    h, w = hw
    if layout == 'swin':
        b, n, c = x.shape
        y = fn(x.transpose(1, 2).reshape(b, c, h, w))
        return y.flatten(2).transpose(1, 2)
    if layout == 'vit':
        b, n, c = x.shape
        prefix, patches = x[:, :n - h * w], x[:, n - h * w:]
        y = fn(patches.transpose(1, 2).reshape(b, c, h, w))
        return torch.cat([prefix, y.flatten(2).transpose(1, 2)], dim=1)
    raise ValueError(f'unknown layout {layout!r}')
