"""mmpretrain ``TIMMBackbone`` with ``features_only=True`` (the stock mmdet
``timm_example`` configs): the stages are the modules that timm itself names as
the returned features' producers (``feature_info.module_name()``: ``layer1`` of a
ResNet, ``blocks.1`` of an EfficientNet), so one adapter covers every timm model
that has feature extraction.

timm's ``FeatureListNet`` flattens nested sequentials into its own children
(``blocks.1`` becomes ``blocks_1``); models with their own feature class
(``EfficientNetFeatures``) keep the original paths. Both are resolved.
"""
from typing import List

from .base import register_adapter
from .modules import ModuleStagesAdapter


@register_adapter('mmpretrain.models.backbones.timm_backbone.TIMMBackbone')
class TIMMFeaturesAdapter(ModuleStagesAdapter):
    family = 'TIMMBackbone'

    def stage_modules(self) -> List[str]:
        model = self.backbone.timm_model
        info = getattr(model, 'feature_info', None)
        if info is None or not hasattr(info, 'module_name'):
            raise TypeError(
                f'{self.family}: only features_only=True describes stages (timm '
                f'{type(model).__name__} returns a single feature here); set '
                "features_only=True or name the stage modules (ProTune(stage_modules="
                "['timm_model.<module>', ...]))")
        modules = dict(model.named_modules())
        names = []
        for name in info.module_name():
            flat = name.replace('.', '_')
            found = name if name in modules else flat if flat in modules else None
            if found is None:
                raise TypeError(f'{self.family}: timm names feature module {name!r}, '
                                f'which {type(model).__name__} does not have')
            names.append(f'timm_model.{found}')
        return names
