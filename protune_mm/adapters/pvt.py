"""mmdet PyramidVisionTransformer and PyramidVisionTransformerV2 (a subclass):
``layers[i] = [patch_embed, [position embedding (PVTv1)] + blocks, norm]``; the
encoder blocks of each stage form one stage, after the stage's position
embedding (see ``pyramid.py`` for the token layout and VPT's key/value
prompts)."""
from typing import List, Sequence, Tuple

import torch.nn as nn

from .base import register_adapter
from .pyramid import PyramidAdapter


@register_adapter('mmdet.models.backbones.pvt.PyramidVisionTransformer')
class PyramidVisionTransformerAdapter(PyramidAdapter):
    family = 'PyramidVisionTransformer'

    def stage_blocks(self) -> List[Tuple[str, Sequence[nn.Module]]]:
        stages = []
        for i, layer in enumerate(self.backbone.layers):
            # PVTv1 puts its AbsolutePositionEmbedding first in the block list.
            first = 0 if hasattr(layer[1][0], 'attn') else 1
            stages.append((f'layers.{i}.1', list(layer[1])[first:]))
        return stages

    def patch_size(self) -> Tuple[int, int]:
        return tuple(self.backbone.layers[0][0].projection.kernel_size)
