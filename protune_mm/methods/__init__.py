"""Methods on one base (:class:`PromptMethod`), one file each."""
from .base import FrozenBackboneWrapper, Handle, PromptMethod, find_wrappers
from .frozen import Frozen
from .protune import ProTune, ProTuneBlock
from .vpt import VPT

__all__ = ['PromptMethod', 'FrozenBackboneWrapper', 'Handle', 'find_wrappers',
           'Frozen', 'ProTune', 'ProTuneBlock', 'VPT']
