"""mmpretrain ConvNeXt (v1 and v2), as the stock mmdet/mmseg ConvNeXt configs use it
(``type='mmpretrain.ConvNeXt'``): stages are ``stages[i]`` on NCHW maps.

Each stage is ``downsample_layers[i]`` (stem or LN + 2x2 conv) followed by the
blocks ``stages[i]``; a stage's input is taken after its downsampling (the
blocks' input, ``channels[i]`` wide) and its output before the ``norm{i}`` of
the returned feature. With ``gap_before_final_norm=True`` (mmpretrain's default,
for classification) the returned features are pooled vectors; the stages are
still maps, so nothing changes for the prompts.
"""
from typing import List

from .base import BackboneAdapter, Stage, register_adapter


@register_adapter('mmpretrain.models.backbones.convnext.ConvNeXt')
class ConvNeXtAdapter(BackboneAdapter):
    family = 'ConvNeXt'

    def stages(self) -> List[Stage]:
        net = self.backbone
        # out_indices are resolved to non-negative stage indices by ConvNeXt.
        last_out = max(net.out_indices)
        return [Stage.single(f'stages.{i}', stage, width, i, last_out)
                for i, (stage, width) in enumerate(zip(net.stages, net.channels))]
