"""protune_mm: Pro-tuning and VPT prompts for frozen backbones in mmdet 3 / mmseg 1.

Importing the package registers its modules in the ``protune_mm`` scope; configs
do it with ``custom_imports = dict(imports=['protune_mm'])``.
"""
from .version import __version__
from . import safe_load  # noqa: F401  (lets torch>=2.6 load mmengine checkpoints)
from .engine import *  # noqa: F401,F403
from .engine.prompt_pack import pack_nbytes
from .models import *  # noqa: F401,F403
from .models.wrapper import find_wrappers
from .registry import HOOKS, MODELS

__all__ = ['__version__', 'MODELS', 'HOOKS', 'Frozen', 'ProTune', 'VPT', 'TimmViT',
           'ParamReportHook', 'PromptCheckpointHook', 'parameter_report',
           'load_prompt_pack', 'read_prompt_pack', 'export_prompt_pack',
           'is_prompt_pack', 'PromptPack', 'pack_nbytes', 'find_wrappers']
