"""mmdet / mmseg MobileNetV2: the stages are its ``layers`` (``layer1..7``, and
mmdet's ``conv2``), as counted by its ``out_indices``."""
from typing import List

from .base import register_adapter
from .modules import ModuleStagesAdapter


@register_adapter('mmdet.models.backbones.mobilenet_v2.MobileNetV2',
                  'mmseg.models.backbones.mobilenet_v2.MobileNetV2')
class MobileNetV2Adapter(ModuleStagesAdapter):
    family = 'MobileNetV2'

    def stage_modules(self) -> List[str]:
        return list(self.backbone.layers)
