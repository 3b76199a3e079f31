"""mmseg BiSeNetV1 and BiSeNetV2: the stages of both paths, each path's first
stage left out (its input is the image).

- V1: the context path's inner ResNet ``layer1..4``, then the spatial path's
  ``layer1..3``;
- V2: the detail branch's stages, then the semantic branch's (stem, GE stages,
  context embedding).
"""
from typing import List

from .base import register_adapter
from .modules import ModuleStagesAdapter


@register_adapter('mmseg.models.backbones.bisenetv1.BiSeNetV1')
class BiSeNetV1Adapter(ModuleStagesAdapter):
    family = 'BiSeNetV1'

    def stage_modules(self) -> List[str]:
        net = self.backbone
        return ([f'context_path.backbone.{n}' for n in net.context_path.backbone.res_layers]
                + [f'spatial_path.{n}' for n in net.spatial_path.layers[1:]])


@register_adapter('mmseg.models.backbones.bisenetv2.BiSeNetV2')
class BiSeNetV2Adapter(ModuleStagesAdapter):
    family = 'BiSeNetV2'

    def stage_modules(self) -> List[str]:
        net = self.backbone
        return ([f'detail.detail_branch.{i}'
                 for i in range(1, len(net.detail.detail_branch))]
                + [f'semantic.{n}' for n in net.semantic.semantic_stages[1:]])
