"""protune_mm: Pro-tuning and VPT prompts for frozen backbones in mmdet 3 / mmseg 1.

Importing the package registers its modules in the ``protune_mm`` scope; configs
do it with ``custom_imports = dict(imports=['protune_mm'])``.
"""
from .version import __version__
from .adapters import BackboneAdapter, Stage, adapter_for, register_adapter
from .backbones import TimmViT
from .checkpoint import *  # noqa: F401,F403
from .engine import *  # noqa: F401,F403
from .engine import register_pack_scheme
from .methods import (VPT, AdaptFormer, Frozen, FrozenBackboneWrapper, LoRA, ProTune,
                      PromptMethod, bind_image_regions)
from .registry import HOOKS, MODELS, TRANSFORMS
from . import robustness  # noqa: F401  (registers protune_mm.Corrupt)

register_pack_scheme()  # load_from=PACK, inferencers: every loader reads packs

__all__ = ['__version__', 'MODELS', 'HOOKS', 'TRANSFORMS', 'PromptMethod', 'FrozenBackboneWrapper',
           'Frozen', 'ProTune', 'VPT', 'LoRA', 'AdaptFormer', 'TimmViT', 'BackboneAdapter', 'Stage',
           'adapter_for', 'register_adapter', 'find_wrappers', 'bind_image_regions',
           'ParamReportHook', 'ImageRegionHook',
           'PromptCheckpointHook', 'parameter_report', 'load_prompt_pack',
           'read_prompt_pack', 'export_prompt_pack', 'is_prompt_pack', 'PromptPack',
           'pack_nbytes', 'check_readable', 'format_report']
