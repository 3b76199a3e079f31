"""The method contract: every method here builds an inner backbone, freezes it,
records the frozen set, and injects its prompts at the targets the backbone's
adapter names.

A method subclass declares three things: its options, as a dataclass
(:attr:`config_class`, a :class:`~.config.MethodConfig` with its checks beside the
fields); what options left to the backbone resolve to (:meth:`resolve`); and
:meth:`inject`, which adds the prompts and returns the handles of everything it
attached. The base builds and freezes the backbone, records the frozen set
(:attr:`frozen_keys`) before anything is injected (checkpoints, packs, the
identity hash and the parameter report derive from it), then calls ``resolve``
and ``inject`` and keeps the handles, so :meth:`remove`, :meth:`disable` and
:meth:`enable` give the bare backbone back exactly.
"""
import copy
import functools
from typing import Callable, Dict, List, Optional

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseModule

from ..adapters import BackboneAdapter, adapter_for
from ..checkpoint import record_method, wrapper_load_pre_hook
from ..ops.frozen_ops import disable_frozen_ops, enable_frozen_ops, frozen_ops_enabled
from ..rebind import Handle
from ..registry import MODELS
from .config import MethodConfig


class PromptMethod(BaseModule):
    """Base of the methods (Frozen, ProTune, VPT, LoRA).

    Parameters live in two places: ``self.backbone`` (the inner backbone, frozen,
    ``requires_grad=False`` from construction on, always in eval mode so BatchNorm
    statistics, dropout and drop-path do not move) and what the method adds,
    ``self.prompts`` by convention (a method may also put parameters inside the
    backbone's module tree; they are not frozen, since they are not in the
    frozen set). Methods attach with hooks, so the output is exactly the inner
    backbone's: same tuple, shapes and strides.

    Args:
        backbone (dict): config of the inner backbone, built in the caller's
            registry scope (``type='ResNet'`` is mmdet's ResNet under
            ``default_scope='mmdet'``, mmseg's under ``'mmseg'``; ``mmdet.``/
            ``mmseg.`` prefixes work too). Its own ``init_cfg`` loads its weights.
        pretrained (str, optional): checkpoint of the inner backbone, a shortcut
            for its ``init_cfg=dict(type='Pretrained', checkpoint=...)``. mmseg's
            ``EncoderDecoder(pretrained=...)`` passes its argument here.
        init_cfg (dict, optional): init config of the prompts.
        memory_efficient (bool, optional): lean frozen ops (conv+BN folded, a
            backward that saves only ReLU masks; ``protune_mm/ops/frozen_ops.py``):
            same outputs and gradients, less memory. None (default): on wherever
            the backbone's adapter supports them; False: off; True: required.
        adapter (callable, optional): builds the adapter from the inner backbone
            in place of its registered one.
        **options: the method's options, the fields of its :attr:`config_class`
            (an unknown name is refused, listing them).
    """

    #: method name written into prompt packs and reports.
    method = 'frozen'
    #: the method's options (recorded in checkpoints and packs).
    config_class = MethodConfig
    #: whether the untrained method computes exactly what the frozen backbone
    #: computes (its published init gives the identity; VPT's random prompts do not).
    identity_at_init = True

    def __init__(self, backbone: dict, pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None,
                 memory_efficient: Optional[bool] = None,
                 adapter: Optional[Callable[[nn.Module], BackboneAdapter]] = None,
                 **options):
        super().__init__(init_cfg=init_cfg)
        name = type(self).__name__
        # Cheap checks first, so a bad config fails before the backbone is built.
        self.config = self.config_class.from_options(options, name)
        if memory_efficient not in (None, True, False):
            raise TypeError(f'{name}.memory_efficient must be None (auto), True or '
                            f'False, got {memory_efficient!r}')
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
                f'{name}: cannot build the inner backbone {backbone["type"]!r} ({e}). '
                "Use it from a config with default_scope='mmdet' or 'mmseg', or write "
                "the scope in the type, e.g. type='mmdet.ResNet'.") from e
        self.backbone.requires_grad_(False)
        self.backbone.eval()
        #: state-dict keys (relative to this module) of the frozen tensors,
        #: recorded before any method change: parameters and buffers.
        self.frozen_keys = frozenset('backbone.' + k for k in self.backbone.state_dict())
        self.adapter: BackboneAdapter = (adapter(self.backbone) if adapter is not None
                                         else self.build_adapter())
        if memory_efficient and not self.adapter.lean_ops():
            raise ValueError(
                f'{name}.memory_efficient=True: lean frozen ops support the ResNet '
                f'family, not {type(self.backbone).__name__} ({self.adapter.family}); '
                'leave memory_efficient unset (auto) or False')
        self.memory_efficient = (self.adapter.lean_ops() if memory_efficient is None
                                 else memory_efficient)
        self.prompts = nn.ModuleDict()
        self.prompts_enabled = True
        #: {target: reason} of prompts not created because they cannot reach a
        #: returned feature (reported in the log and the parameter report).
        self.skipped: Dict[str, str] = {}
        self.config = self.resolve(self.config)
        self._handles: List = []
        self._attach()
        self.register_load_state_dict_pre_hook(wrapper_load_pre_hook)
        self._register_state_dict_hook(record_method)

    # -- the contract ----------------------------------------------------------------
    def build_adapter(self) -> BackboneAdapter:
        """The adapter of the inner backbone (its registered family's by default;
        ``self.config`` is set, unresolved)."""
        return adapter_for(self.backbone)

    def resolve(self, config: MethodConfig) -> MethodConfig:
        """``config`` with the options left to the backbone resolved (e.g.
        ``stages=None`` -> the list of stages), so equal models have equal method
        configs; ``self.adapter`` is set."""
        return config

    def inject(self) -> list:
        """Add the prompts at the adapter's targets; return the handles of every
        hook or rebinding made (removed by :meth:`remove`)."""
        return []

    def method_config(self) -> dict:
        """The method's options, resolved (recorded in checkpoints and packs)."""
        return self.config.record()

    @property
    def legacy_defaults(self) -> Dict[str, object]:
        return self.config.legacy_defaults

    @property
    def changed_defaults(self) -> str:
        return self.config.changed_defaults

    def _attach(self):
        handles = list(self.adapter.attach())
        handles += list(self.inject() or [])
        if self.memory_efficient:
            enable_frozen_ops(self.backbone, self.adapter.conv_bn_pairs())
            handles.append(Handle(functools.partial(disable_frozen_ops,
                                                    self.backbone)))
        self._handles = handles
        for target, reason in self.skipped.items():
            print_log(f'{type(self).__name__}: no prompt at {target}: {reason}',
                      logger='current')

    def remove(self) -> None:
        """Detach the method: the inner backbone computes exactly as the bare
        backbone (prompts deleted, hooks and rebindings undone)."""
        for handle in reversed(self._handles):
            handle.remove()
        self._handles = []
        self.prompts = nn.ModuleDict()

    def disable(self) -> None:
        """Compute as the bare backbone (prompts kept) until :meth:`enable`."""
        self.prompts_enabled = False
        if self.memory_efficient:
            disable_frozen_ops(self.backbone)

    def enable(self) -> None:
        self.prompts_enabled = True
        if self.memory_efficient and not frozen_ops_enabled(self.backbone):
            enable_frozen_ops(self.backbone, self.adapter.conv_bn_pairs())

    # -- the frozen set ----------------------------------------------------------------
    def frozen_state_dict(self) -> Dict[str, torch.Tensor]:
        """The frozen tensors, keyed relative to the inner backbone."""
        state = self.backbone.state_dict()
        return {k: state[k] for k in (key[len('backbone.'):] for key in
                                      sorted(self.frozen_keys))}

    # -- freezing --------------------------------------------------------------------
    def train(self, mode: bool = True):
        super().train(mode)
        self.backbone.eval()
        if self.adapter.mode_selects_outputs:
            self.backbone.training = mode
        return self

    def forward(self, x):
        return self.backbone(x)

    def report_notes(self) -> List[str]:
        """Costs beyond the parameters, for the parameter report."""
        return []

    def extra_repr(self) -> str:
        options = ', '.join(f'{k}={v!r}' for k, v in self.method_config().items())
        return f'method={self.method}' + (f', {options}' if options else '')


#: the earlier name of the base, kept for configs and user code.
FrozenBackboneWrapper = PromptMethod
