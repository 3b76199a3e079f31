"""Backbone adapters, one family per file; importing registers them."""
from . import resnet, swin, timm_vit  # noqa: F401  (registration)
from . import beit, mit, pvt, twins, vit  # noqa: F401  (registration)
from .base import (BackboneAdapter, KeyValueSite, Stage, TokenSites, WindowSite,
                   adapter_for, register_adapter, registered_adapters)

__all__ = ['BackboneAdapter', 'KeyValueSite', 'Stage', 'TokenSites', 'WindowSite',
           'adapter_for', 'register_adapter', 'registered_adapters']
