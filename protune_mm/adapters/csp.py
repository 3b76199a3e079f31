"""mmdet CSPNeXt (RTMDet) and CSPDarknet (YOLOX): ``stage1..4`` after the stem
(the stem's input is the image, too narrow for a prompt block)."""
from typing import List

from .base import register_adapter
from .modules import ModuleStagesAdapter


@register_adapter('mmdet.models.backbones.cspnext.CSPNeXt',
                  'mmdet.models.backbones.csp_darknet.CSPDarknet')
class CSPAdapter(ModuleStagesAdapter):
    family = 'CSPNeXt/CSPDarknet'

    def stage_modules(self) -> List[str]:
        return list(self.backbone.layers[1:])  # layers[0] is 'stem'
