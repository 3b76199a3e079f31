"""mmseg MixVisionTransformer (SegFormer's MiT): ``layers[i] = [patch_embed,
blocks, norm]``; the blocks of each stage form one stage (see ``pyramid.py``
for the token layout and VPT's key/value prompts)."""
from typing import List, Sequence, Tuple

import torch.nn as nn

from .base import register_adapter
from .pyramid import PyramidAdapter


@register_adapter('mmseg.models.backbones.mit.MixVisionTransformer')
class MixVisionTransformerAdapter(PyramidAdapter):
    family = 'MixVisionTransformer'

    def stage_blocks(self) -> List[Tuple[str, Sequence[nn.Module]]]:
        return [(f'layers.{i}.1', layer[1])
                for i, layer in enumerate(self.backbone.layers)]

    def patch_size(self) -> Tuple[int, int]:
        return tuple(self.backbone.layers[0][0].projection.kernel_size)
