"""mmdet / mmseg / mmpretrain ResNet family (ResNet, ResNetV1c/V1d, ResNeXt, ...): stages are
``layer1..4`` on NCHW maps; the frozen conv -> BN -> ReLU chains take lean ops."""
from typing import List, Tuple

import torch.nn as nn

from ..ops.frozen_ops import foldable_pairs
from .base import BackboneAdapter, Stage, register_adapter


def _block_widths(block: nn.Module) -> Tuple[int, int]:
    # Bottleneck ends with conv3, BasicBlock with conv2.
    last = block.conv3 if hasattr(block, 'conv3') else block.conv2
    return block.conv1.in_channels, last.out_channels


@register_adapter('mmdet.models.backbones.resnet.ResNet',
                  'mmseg.models.backbones.resnet.ResNet',
                  'mmpretrain.models.backbones.resnet.ResNet')
class ResNetAdapter(BackboneAdapter):
    family = 'ResNet'

    def stages(self) -> List[Stage]:
        backbone = self.backbone
        last_out = max(backbone.out_indices)
        layers = [getattr(backbone, name) for name in backbone.res_layers]
        return [Stage.single(name, layer, _block_widths(layer[0])[0], i, last_out,
                             _block_widths(layer[-1])[1])
                for i, (name, layer) in enumerate(zip(backbone.res_layers, layers))]

    def conv_bn_pairs(self) -> List[Tuple[nn.Module, str, str]]:
        # By construction of the mmdet/mmseg/mmpretrain code, each BN below is
        # applied to its conv's output and to nothing else: the stem conv1/norm1,
        # convK/normK inside each block, and consecutive (conv, BN) entries of an
        # nn.Sequential (deep stem, downsample).
        pairs = []
        for owner in self.backbone.modules():
            if isinstance(owner, nn.Sequential):
                names = list(owner._modules)
                candidates = list(zip(names[:-1], names[1:]))
            else:
                candidates = [(f'conv{k}', getattr(owner, f'norm{k}_name', None))
                              for k in (1, 2, 3)]
            pairs += foldable_pairs(owner, candidates)
        return pairs
