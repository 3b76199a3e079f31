"""mmseg Twins PCPVT and SVT (a PCPVT subclass): ``layers[i]`` are the blocks of
stage ``i`` (the conditional position encoding runs after block 0, inside the
stage); one stage per pyramid stage (see ``pyramid.py`` for the token layout
and VPT's key/value prompts).

VPT: the global sub-sampled attention blocks (all of PCPVT's, every second of
SVT's) take key/value prompts. SVT's locally-grouped attention blocks (a window
attention written inside its own forward, with no module to hook) take none.
"""
from typing import List, Sequence, Tuple

import torch.nn as nn

from .base import register_adapter
from .pyramid import PyramidAdapter


@register_adapter('mmseg.models.backbones.twins.PCPVT')
class TwinsAdapter(PyramidAdapter):
    family = 'Twins'

    def stage_blocks(self) -> List[Tuple[str, Sequence[nn.Module]]]:
        return [(f'layers.{i}', blocks) for i, blocks in enumerate(self.backbone.layers)]

    def patch_size(self) -> Tuple[int, int]:
        return tuple(self.backbone.patch_embeds[0].projection.kernel_size)
