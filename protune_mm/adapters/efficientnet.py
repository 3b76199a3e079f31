"""mmdet EfficientNet: the stages are ``layers[1:]`` (``layers[0]``, the stem
conv, takes the image), as counted by its ``out_indices``."""
from typing import List

from .base import register_adapter
from .modules import ModuleStagesAdapter


@register_adapter('mmdet.models.backbones.efficientnet.EfficientNet')
class EfficientNetAdapter(ModuleStagesAdapter):
    family = 'EfficientNet'

    def stage_modules(self) -> List[str]:
        return [f'layers.{i}' for i in range(1, len(self.backbone.layers))]
