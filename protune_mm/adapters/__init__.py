"""Backbone adapters, one family per file; importing registers them."""
from . import resnet, swin, timm_vit  # noqa: F401  (registration)
from . import convnext  # noqa: F401  (mmpretrain ConvNeXt)
from . import poolformer  # noqa: F401  (mmpretrain PoolFormer)
from .base import (BackboneAdapter, Stage, TokenSites, WindowSite, adapter_for,
                   register_adapter, registered_adapters)

__all__ = ['BackboneAdapter', 'Stage', 'TokenSites', 'WindowSite', 'adapter_for',
           'register_adapter', 'registered_adapters']
