"""mmpretrain PoolFormer (the stock mmseg FPN PoolFormer configs,
``type='mmpretrain.PoolFormer'``): stages are the block sequences of ``network``
on NCHW maps.

``network`` alternates block sequences and PatchEmbed downsamplings (one where
the width changes: ``network.0, 2, 4, 6`` are the stages of every stock arch),
and ``out_indices`` count entries of ``network``, downsamplings included.
"""
from typing import List

import torch.nn as nn

from .base import BackboneAdapter, Stage, reaching, register_adapter


@register_adapter('mmpretrain.models.backbones.poolformer.PoolFormer')
class PoolFormerAdapter(BackboneAdapter):
    family = 'PoolFormer'

    def stages(self) -> List[Stage]:
        net = self.backbone
        last_out = max(net.out_indices)
        stages = []
        for idx, module in enumerate(net.network):
            if not isinstance(module, nn.Sequential):  # a PatchEmbed downsampling
                continue
            width = module[0].layer_scale_1.numel()
            stages.append(Stage(f'network.{idx}', module, module, width, width,
                                *reaching([idx], last_out)))
        return stages
