"""Light real-time mmseg backbones whose stages are named modules:

- CGNet: the last stem conv and the last context-guided block of each level
  (the maps between are concatenations of odd widths, such as 32 + 3);
- ERFNet: each downsampler block after the first (whose input is the image),
  then each decoder upsampler block;
- FastSCNN: the learning-to-downsample separable convs and the global feature
  extractor's three bottlenecks;
- PIDNet: the I, P and D branches' three stages each;
- DDRNet: the context and spatial branches' three stages each.
"""
from typing import List

from .base import register_adapter
from .modules import ModuleStagesAdapter


@register_adapter('mmseg.models.backbones.cgnet.CGNet')
class CGNetAdapter(ModuleStagesAdapter):
    family = 'CGNet'

    def stage_modules(self) -> List[str]:
        net = self.backbone
        return [f'{name}.{len(getattr(net, name)) - 1}'
                for name in ('stem', 'level1', 'level2')]


@register_adapter('mmseg.models.backbones.erfnet.ERFNet')
class ERFNetAdapter(ModuleStagesAdapter):
    family = 'ERFNet'

    def stage_modules(self) -> List[str]:
        net = self.backbone
        return ([f'encoder.{i}' for i, m in enumerate(net.encoder)
                 if i > 0 and type(m).__name__ == 'DownsamplerBlock']
                + [f'decoder.{i}' for i, m in enumerate(net.decoder)
                   if type(m).__name__ == 'UpsamplerBlock'])


@register_adapter('mmseg.models.backbones.fast_scnn.FastSCNN')
class FastSCNNAdapter(ModuleStagesAdapter):
    family = 'FastSCNN'

    def stage_modules(self) -> List[str]:
        return (['learning_to_downsample.dsconv1', 'learning_to_downsample.dsconv2']
                + [f'global_feature_extractor.bottleneck{i}' for i in (1, 2, 3)])


@register_adapter('mmseg.models.backbones.pidnet.PIDNet')
class PIDNetAdapter(ModuleStagesAdapter):
    family = 'PIDNet'

    def stage_modules(self) -> List[str]:
        return [f'{branch}_branch_layers.{i}' for i in range(3)
                for branch in ('i', 'p', 'd')]


@register_adapter('mmseg.models.backbones.ddrnet.DDRNet')
class DDRNetAdapter(ModuleStagesAdapter):
    family = 'DDRNet'

    def stage_modules(self) -> List[str]:
        return [f'{branch}_branch_layers.{i}' for i in range(3)
                for branch in ('context', 'spatial')]
