"""mmseg ICNet: the stages of its inner ResNet (``backbone.layer1..4``), which
ICNet's own forward calls on the half- and quarter-resolution images."""
from typing import List

from .base import register_adapter
from .modules import ModuleStagesAdapter


@register_adapter('mmseg.models.backbones.icnet.ICNet')
class ICNetAdapter(ModuleStagesAdapter):
    family = 'ICNet'

    def stage_modules(self) -> List[str]:
        return [f'backbone.{n}' for n in self.backbone.backbone.res_layers]
