"""mmseg STDCNet and STDCContextPathNet (its usual wrapper): the STDC stages
after the first (whose input is the image)."""
from typing import List

from .base import register_adapter
from .modules import ModuleStagesAdapter


@register_adapter('mmseg.models.backbones.stdc.STDCNet')
class STDCNetAdapter(ModuleStagesAdapter):
    family = 'STDCNet'
    prefix = ''

    def stage_modules(self) -> List[str]:
        net = self.backbone.backbone if self.prefix else self.backbone
        return [f'{self.prefix}stages.{i}' for i in range(1, len(net.stages))]


@register_adapter('mmseg.models.backbones.stdc.STDCContextPathNet')
class STDCContextPathNetAdapter(STDCNetAdapter):
    family = 'STDCContextPathNet'
    prefix = 'backbone.'
