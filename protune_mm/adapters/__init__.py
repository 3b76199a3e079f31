"""Backbone adapters, one family per file; importing registers them."""
from . import resnet, swin, timm_vit  # noqa: F401  (registration)
from .base import (BackboneAdapter, Stage, TokenSites, WindowSite, adapter_for,
                   register_adapter, registered_adapters)

__all__ = ['BackboneAdapter', 'Stage', 'TokenSites', 'WindowSite', 'adapter_for',
           'register_adapter', 'registered_adapters']
