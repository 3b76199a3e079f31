"""mmdet HourglassNet (CornerNet, CentripetalNet): one stage per stacked
hourglass module."""
from typing import List

from .base import register_adapter
from .modules import ModuleStagesAdapter


@register_adapter('mmdet.models.backbones.hourglass.HourglassNet')
class HourglassNetAdapter(ModuleStagesAdapter):
    family = 'HourglassNet'

    def stage_modules(self) -> List[str]:
        return [f'hourglass_modules.{i}'
                for i in range(len(self.backbone.hourglass_modules))]
