"""mmseg FastSCNN: the learning-to-downsample separable convs and the global
feature extractor's three bottlenecks."""
from typing import List

from .base import register_adapter
from .modules import ModuleStagesAdapter


@register_adapter('mmseg.models.backbones.fast_scnn.FastSCNN')
class FastSCNNAdapter(ModuleStagesAdapter):
    family = 'FastSCNN'

    def stage_modules(self) -> List[str]:
        return (['learning_to_downsample.dsconv1', 'learning_to_downsample.dsconv2']
                + [f'global_feature_extractor.bottleneck{i}' for i in (1, 2, 3)])
