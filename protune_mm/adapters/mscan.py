"""mmseg MSCAN (SegNeXt): stage ``i`` is ``block{i}``, a list of MSCA blocks on
(B, H*W, C) tokens, called as ``blk(x, H, W)``: the per-call grid comes from
the hook's arguments, as Swin's ``hw_shape``."""
from typing import List

import torch

from .base import BackboneAdapter, Stage, register_adapter


@register_adapter('mmseg.models.backbones.mscan.MSCAN')
class MSCANAdapter(BackboneAdapter):
    family = 'MSCAN'

    def stages(self) -> List[Stage]:
        # MSCAN returns every stage: all of them reach a returned feature.
        net = self.backbone
        stages = []
        for i in range(1, net.num_stages + 1):
            blocks = getattr(net, f'block{i}')
            width = blocks[0].norm1.num_features
            stages.append(Stage(f'block{i}', blocks[0], blocks[-1], width, width))
        return stages

    def to_map(self, x: torch.Tensor, args: tuple) -> torch.Tensor:
        b, n, c = x.shape
        h, w = args[1], args[2]
        return x.transpose(1, 2).reshape(b, c, h, w)

    def from_map(self, y: torch.Tensor, x: torch.Tensor, args: tuple) -> torch.Tensor:
        return y.flatten(2).transpose(1, 2)
