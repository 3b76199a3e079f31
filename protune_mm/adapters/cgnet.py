"""mmseg CGNet: the last stem conv and the last context-guided block of each
level (the maps between are concatenations of odd widths, such as 32 + 3)."""
from typing import List

from .base import register_adapter
from .modules import ModuleStagesAdapter


@register_adapter('mmseg.models.backbones.cgnet.CGNet')
class CGNetAdapter(ModuleStagesAdapter):
    family = 'CGNet'

    def stage_modules(self) -> List[str]:
        net = self.backbone
        return [f'{name}.{len(getattr(net, name)) - 1}'
                for name in ('stem', 'level1', 'level2')]
