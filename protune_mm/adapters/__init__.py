"""Backbone adapters, one family per file; importing registers them."""
from . import resnet, swin, timm_vit  # noqa: F401  (registration)
from . import bisenet, csp, darknet, hrnet, icnet, mobilenet_v2, ssd_vgg, unet  # noqa: F401,E501
from .base import (BackboneAdapter, Stage, TokenSites, WindowSite, adapter_for,
                   register_adapter, registered_adapters)
from .modules import ModuleStagesAdapter

__all__ = ['BackboneAdapter', 'ModuleStagesAdapter', 'Stage', 'TokenSites',
           'WindowSite', 'adapter_for', 'register_adapter', 'registered_adapters']
