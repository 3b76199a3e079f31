"""mmdet / mmseg HRNet: ``layer1`` on an NCHW map, then ``stage2..4``, each taking
and returning a list of maps, one per branch (ProTune puts a block on each)."""
from typing import List

from .base import register_adapter
from .modules import ModuleStagesAdapter


@register_adapter('mmdet.models.backbones.hrnet.HRNet',
                  'mmseg.models.backbones.hrnet.HRNet')
class HRNetAdapter(ModuleStagesAdapter):
    family = 'HRNet'

    def stage_modules(self) -> List[str]:
        return ['layer1', 'stage2', 'stage3', 'stage4']
