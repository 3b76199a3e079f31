"""Backbone adapters, one family per file; importing registers them."""
from . import (beit, bisenet, branches, cgnet, convnext, csp, darknet,  # noqa: F401
               efficientnet, erfnet, fast_scnn, hourglass, hrnet, icnet, mit,
               mobilenet_v2, mobilenet_v3, mscan, poolformer, pvt, resnet,
               ssd_vgg, stdc, swin, timm_features, timm_vit, twins, unet,
               vit)
from .base import (BackboneAdapter, BlockSite, KeyValueSite, Stage, TokenSites, WindowSite,
                   adapter_for, register_adapter, registered_adapters)
from .modules import ModuleStagesAdapter

__all__ = ['BackboneAdapter', 'BlockSite', 'KeyValueSite', 'ModuleStagesAdapter', 'Stage',
           'TokenSites', 'WindowSite', 'adapter_for', 'register_adapter',
           'registered_adapters']
