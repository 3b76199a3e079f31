"""Methods on one base (:class:`PromptMethod`), one file each."""
from .base import FrozenBackboneWrapper, Handle, PromptMethod, find_wrappers
from .frozen import Frozen
from .protune import ProTune, ProTuneBlock
from .vpt import VPT
from .vpt_pad import bind_image_regions

__all__ = ['PromptMethod', 'FrozenBackboneWrapper', 'Handle', 'find_wrappers',
           'Frozen', 'ProTune', 'ProTuneBlock', 'VPT', 'bind_image_regions']
