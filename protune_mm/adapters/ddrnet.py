"""mmseg DDRNet: the context and spatial branches' three stages each, in the
order they run."""
from typing import List

from .base import register_adapter
from .modules import ModuleStagesAdapter


@register_adapter('mmseg.models.backbones.ddrnet.DDRNet')
class DDRNetAdapter(ModuleStagesAdapter):
    family = 'DDRNet'
    mode_selects_outputs = True  # auxiliary outputs in training, for its head's losses

    def stage_modules(self) -> List[str]:
        return [f'{branch}_branch_layers.{i}' for i in range(3)
                for branch in ('context', 'spatial')]
