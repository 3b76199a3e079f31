"""mmdet / mmseg / mmpretrain ResNet family (ResNet, ResNetV1c/V1d, ResNeXt, ...): stages are
``layer1..4`` on NCHW maps; the frozen conv -> BN -> ReLU chains take lean ops."""
from typing import List, Tuple

import torch.nn as nn

from .base import BackboneAdapter, Stage, reaching, register_adapter


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
        stages = []
        for i, name in enumerate(backbone.res_layers):
            layer = getattr(backbone, name)
            stages.append(Stage(name, layer, layer, _block_widths(layer[0])[0],
                                _block_widths(layer[-1])[1], *reaching([i], last_out)))
        return stages

    def lean_ops(self) -> bool:
        return True
