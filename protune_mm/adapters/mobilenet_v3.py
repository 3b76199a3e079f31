"""mmseg MobileNetV3: the stages are its ``layers`` after ``layer0`` (whose
input is the image), as counted by its ``out_indices``."""
from typing import List

from .base import register_adapter
from .modules import ModuleStagesAdapter


@register_adapter('mmseg.models.backbones.mobilenet_v3.MobileNetV3')
class MobileNetV3Adapter(ModuleStagesAdapter):
    family = 'MobileNetV3'

    def stage_modules(self) -> List[str]:
        return list(self.backbone.layers[1:])
