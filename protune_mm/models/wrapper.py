"""The shared mechanism of every method here: build an inner backbone, freeze it,
keep it in eval mode, add prompts next to it.

``Frozen`` (no prompts), ``ProTune`` and ``VPT`` only differ in the prompts they add;
freezing, state-dict handling and the parameter report live here once.
"""
import copy
from typing import Dict, List, Optional

import torch.nn as nn
from mmengine.model import BaseModule

from ..registry import MODELS
from .frozen_ops import enable_frozen_ops


class FrozenBackboneWrapper(BaseModule):
    """Base of the backbone wrappers.

    Parameters live in two places: ``self.backbone`` (the inner backbone, frozen,
    ``requires_grad=False`` from construction on, always in eval mode so BatchNorm
    statistics, dropout and drop-path do not move) and ``self.prompts`` (everything
    the method adds; the only trainable parameters on the backbone side). Prompt
    methods attach to the inner backbone with forward hooks, so the output is
    exactly the inner backbone's output: same tuple, shapes and strides.

    Args:
        backbone (dict): config of the inner backbone, built in the caller's
            registry scope (``type='ResNet'`` is mmdet's ResNet under
            ``default_scope='mmdet'``, mmseg's under ``'mmseg'``; ``mmdet.``/
            ``mmseg.`` prefixes work too). Its own ``init_cfg`` loads its weights.
        pretrained (str, optional): checkpoint of the inner backbone, a shortcut
            for its ``init_cfg=dict(type='Pretrained', checkpoint=...)``. mmseg's
            ``EncoderDecoder(pretrained=...)`` passes its argument here, so stock
            mmseg configs keep working once their backbone is wrapped.
        init_cfg (dict, optional): init config of the prompts.
        memory_efficient (bool): compute the frozen ResNet-family backbone with
            lean frozen ops (conv+BN folded, backward saves only ReLU masks; see
            ``frozen_ops.py``): same outputs, less memory and time when gradients
            flow through the backbone to prompts. Default False.
    """

    #: method name written into prompt packs and reports.
    method = 'frozen'

    def __init__(self, backbone: dict, pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None, memory_efficient: bool = False):
        super().__init__(init_cfg=init_cfg)
        name = type(self).__name__
        if not isinstance(memory_efficient, bool):
            raise TypeError(f'{name}.memory_efficient must be True or False, got '
                            f'{memory_efficient!r}')
        if not isinstance(backbone, dict) or 'type' not in backbone:
            raise TypeError(f'{name}.backbone must be a config dict '
                            f"with a 'type' key, got {backbone!r}")
        backbone = copy.deepcopy(dict(backbone))
        if pretrained is not None:
            if not isinstance(pretrained, str):
                raise TypeError(f'{name}.pretrained must be a checkpoint path or URL, '
                                f'got {pretrained!r}')
            if backbone.get('init_cfg') or backbone.get('pretrained'):
                raise ValueError(f'{name}.pretrained={pretrained!r} conflicts with the '
                                 'init_cfg/pretrained of the inner backbone: set only '
                                 'one of them')
            backbone['init_cfg'] = dict(type='Pretrained', checkpoint=pretrained)
        self.backbone_cfg = copy.deepcopy(backbone)
        try:
            self.backbone = MODELS.build(backbone)
        except KeyError as e:
            raise KeyError(
                f'{type(self).__name__}: cannot build the inner backbone '
                f"{backbone['type']!r} ({e}). Use it from a config with "
                "default_scope='mmdet' or 'mmseg', or write the scope in the type, "
                "e.g. type='mmdet.ResNet'.") from e
        self.backbone.requires_grad_(False)
        self.backbone.eval()
        self.memory_efficient = memory_efficient
        if memory_efficient:
            enable_frozen_ops(self.backbone)
        self.prompts = nn.ModuleDict()
        # Checkpoints may omit the frozen backbone (it comes from its pretrained
        # source); see _fill_frozen_keys.
        self._register_load_state_dict_pre_hook(self._fill_frozen_keys,
                                                with_module=False)

    # -- method interface ----------------------------------------------------------
    def method_config(self) -> dict:
        """Hyper-parameters of the method (recorded in prompt packs)."""
        return {}

    # -- freezing --------------------------------------------------------------------
    def train(self, mode: bool = True):
        super().train(mode)
        self.backbone.eval()
        return self

    def forward(self, x):
        return self.backbone(x)

    def frozen_state_dict(self) -> Dict[str, 'torch.Tensor']:
        """The frozen tensors (parameters and buffers) of the inner backbone."""
        return self.backbone.state_dict()

    def _fill_frozen_keys(self, state_dict, prefix, local_metadata, strict,
                          missing_keys, unexpected_keys, error_msgs):
        """A checkpoint without any frozen-backbone key (a small checkpoint or a
        task pack) keeps the frozen backbone as it is. One holding only part of the
        frozen keys is left alone, so the missing ones are reported as usual."""
        frozen_prefix = prefix + 'backbone.'
        if any(k.startswith(frozen_prefix) for k in state_dict):
            return
        for k, v in self.backbone.state_dict().items():
            state_dict[frozen_prefix + k] = v

    # -- reporting -----------------------------------------------------------------
    def extra_repr(self) -> str:
        return f'method={self.method}'


@MODELS.register_module()
class Frozen(FrozenBackboneWrapper):
    """A frozen backbone and no prompts: the head-only baseline.

    Works with any backbone (no stage description is needed)::

        backbone=dict(type='protune_mm.Frozen', backbone=dict(type='ResNet', ...))
    """
    method = 'frozen'


def wrapper_key_prefix(name: str) -> str:
    """State-dict prefix of everything in the wrapper named ``name`` in its model
    ('' when the model is the wrapper)."""
    return name + '.' if name else ''


def frozen_prefix(name: str) -> str:
    """State-dict prefix of the frozen tensors of the wrapper named ``name``."""
    return wrapper_key_prefix(name) + 'backbone.'


def find_wrappers(model: nn.Module) -> List[tuple]:
    """(name, module) of every backbone wrapper inside ``model``."""
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, FrozenBackboneWrapper)]
