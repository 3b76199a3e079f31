"""mmseg ERFNet: each downsampler block after the first (whose input is the
image), then each decoder upsampler block."""
from typing import List

from .base import register_adapter
from .modules import ModuleStagesAdapter


@register_adapter('mmseg.models.backbones.erfnet.ERFNet')
class ERFNetAdapter(ModuleStagesAdapter):
    family = 'ERFNet'

    def stage_modules(self) -> List[str]:
        net = self.backbone
        return ([f'encoder.{i}' for i, m in enumerate(net.encoder)
                 if i > 0 and type(m).__name__ == 'DownsamplerBlock']
                + [f'decoder.{i}' for i, m in enumerate(net.decoder)
                   if type(m).__name__ == 'UpsamplerBlock'])
