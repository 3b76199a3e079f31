from .protune import ProTune, ProTuneBlock
from .stages import Stage, backbone_family, describe_stages
from .timm_vit import TimmViT
from .vpt import VPT
from .wrapper import Frozen, FrozenBackboneWrapper, find_wrappers

__all__ = ['Frozen', 'FrozenBackboneWrapper', 'ProTune', 'ProTuneBlock', 'VPT',
           'TimmViT', 'Stage', 'describe_stages', 'backbone_family', 'find_wrappers']
