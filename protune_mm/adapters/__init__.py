"""Backbone adapters, one family per file; importing registers them."""
from . import resnet, swin, timm_vit  # noqa: F401  (registration)
from . import (bisenet, csp, darknet, efficientnet, hourglass, hrnet, icnet,  # noqa: F401
               light_seg, mobilenet_v2, mobilenet_v3, mscan, ssd_vgg, stdc, unet)
from .base import (BackboneAdapter, Stage, TokenSites, WindowSite, adapter_for,
                   register_adapter, registered_adapters)
from .modules import ModuleStagesAdapter

__all__ = ['BackboneAdapter', 'ModuleStagesAdapter', 'Stage', 'TokenSites',
           'WindowSite', 'adapter_for', 'register_adapter', 'registered_adapters']
