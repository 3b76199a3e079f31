"""Backbone adapters, one family per file; importing registers them."""
from . import resnet, swin, timm_vit  # noqa: F401  (registration)
from . import (bisenet, cgnet, csp, darknet, ddrnet, efficientnet,  # noqa: F401
               erfnet, fast_scnn, hourglass, hrnet, icnet, mobilenet_v2,
               mobilenet_v3, mscan, pidnet, ssd_vgg, stdc, unet)
from .base import (BackboneAdapter, Stage, TokenSites, WindowSite, adapter_for,
                   register_adapter, registered_adapters)
from .modules import ModuleStagesAdapter

__all__ = ['BackboneAdapter', 'ModuleStagesAdapter', 'Stage', 'TokenSites',
           'WindowSite', 'adapter_for', 'register_adapter', 'registered_adapters']
