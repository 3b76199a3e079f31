"""Registries of protune_mm: children of MMEngine's root registries.

Being children of MMEngine's roots (like mmdet's and mmseg's own), a config with
``default_scope='mmdet'`` or ``'mmseg'`` resolves ``type='protune_mm.ProTune'``,
and our wrappers build their inner backbone in the caller's scope.
"""
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS

MODELS = Registry('model', parent=MMENGINE_MODELS, scope='protune_mm',
                  locations=['protune_mm.methods', 'protune_mm.backbones'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope='protune_mm',
                 locations=['protune_mm.engine'])
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS, scope='protune_mm',
                      locations=['protune_mm.robustness'])
