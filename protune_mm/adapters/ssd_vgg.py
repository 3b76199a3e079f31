"""mmdet SSDVGG: its ``features`` are single layers; a stage is a VGG block,
ending at the ReLU before each max-pool (``relu1_2`` ... ``relu5_3``), and the
last layer (``relu7`` after the dilated fc6/fc7 convs)."""
from typing import List

import torch.nn as nn

from .base import register_adapter
from .modules import ModuleStagesAdapter


@register_adapter('mmdet.models.backbones.ssd_vgg.SSDVGG')
class SSDVGGAdapter(ModuleStagesAdapter):
    family = 'SSDVGG'

    def stage_modules(self) -> List[str]:
        features = self.backbone.features
        ends = [i for i in range(len(features) - 1)
                if isinstance(features[i + 1], nn.MaxPool2d)]
        return [f'features.{i}' for i in ends + [len(features) - 1]]
