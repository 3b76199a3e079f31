"""Methods on one base (:class:`PromptMethod`), one file (or folder) each, each
with its options in one dataclass (``config_class``)."""
from .adaptformer import AdaptFormer, AdaptFormerConfig
from .base import FrozenBackboneWrapper, PromptMethod
from .config import MethodConfig
from .frozen import Frozen
from .lora import LoRA, LoRAConfig
from .protune import ProTune, ProTuneBlock, ProTuneConfig
from .vpt import VPT, VPTConfig, bind_image_regions

__all__ = ['PromptMethod', 'AdaptFormer', 'AdaptFormerConfig', 'FrozenBackboneWrapper', 'MethodConfig',
           'Frozen', 'LoRA', 'LoRAConfig', 'ProTune', 'ProTuneBlock', 'ProTuneConfig', 'VPT', 'VPTConfig',
           'bind_image_regions']
