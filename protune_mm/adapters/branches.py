"""mmseg's multi-branch real-time nets, DDRNet and PIDNet: the stages are each
branch's three stages, in the order they run. Both return auxiliary outputs in
training, for their heads' losses."""
from typing import List, Tuple

from .base import register_adapter
from .modules import ModuleStagesAdapter


class BranchStagesAdapter(ModuleStagesAdapter):
    mode_selects_outputs = True
    #: the branches, in the order their stages run.
    branches: Tuple[str, ...] = ()

    def stage_modules(self) -> List[str]:
        return [f'{branch}_branch_layers.{i}' for i in range(3)
                for branch in self.branches]


@register_adapter('mmseg.models.backbones.ddrnet.DDRNet')
class DDRNetAdapter(BranchStagesAdapter):
    family, branches = 'DDRNet', ('context', 'spatial')


@register_adapter('mmseg.models.backbones.pidnet.PIDNet')
class PIDNetAdapter(BranchStagesAdapter):
    family, branches = 'PIDNet', ('i', 'p', 'd')
