"""mmpretrain PoolFormer (the stock mmseg FPN PoolFormer configs,
``type='mmpretrain.PoolFormer'``): stages are the block sequences of ``network``
on NCHW maps.

``network`` alternates block sequences and PatchEmbed downsamplings (one where
the width changes: ``network.0, 2, 4, 6`` are the stages of every stock arch),
and ``out_indices`` count entries of ``network``, downsamplings included.
"""
from typing import List

import torch.nn as nn

from .base import BackboneAdapter, Stage, register_adapter


@register_adapter('mmpretrain.models.backbones.poolformer.PoolFormer')
class PoolFormerAdapter(BackboneAdapter):
    family = 'PoolFormer'

    def stages(self) -> List[Stage]:
        # Every other entry is a PatchEmbed downsampling, not a stage.
        last_out = max(self.backbone.out_indices)
        return [Stage.single(f'network.{idx}', module, module[0].layer_scale_1.numel(),
                             idx, last_out)
                for idx, module in enumerate(self.backbone.network)
                if isinstance(module, nn.Sequential)]
