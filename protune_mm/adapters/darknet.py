"""mmdet Darknet (YOLOv3): the residual blocks ``conv_res_block1..5`` after the
stem conv."""
from typing import List

from .base import register_adapter
from .modules import ModuleStagesAdapter


@register_adapter('mmdet.models.backbones.darknet.Darknet')
class DarknetAdapter(ModuleStagesAdapter):
    family = 'Darknet'

    def stage_modules(self) -> List[str]:
        return list(self.backbone.cr_blocks[1:])  # cr_blocks[0] is the stem conv1
