"""mmseg UNet: the encoder stages after the first (whose input is the image),
then the decoder stages in the order they run (``decoder[-1]`` first). A decoder
stage is called as ``decoder[i](skip, x)``: its input here is the skip map."""
from typing import List

from .base import register_adapter
from .modules import ModuleStagesAdapter


@register_adapter('mmseg.models.backbones.unet.UNet')
class UNetAdapter(ModuleStagesAdapter):
    family = 'UNet'

    def stage_modules(self) -> List[str]:
        net = self.backbone
        return ([f'encoder.{i}' for i in range(1, len(net.encoder))]
                + [f'decoder.{i}' for i in reversed(range(len(net.decoder)))])
