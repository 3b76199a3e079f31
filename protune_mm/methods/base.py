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
from ..ops.frozen_ops import (disable_frozen_ops, enable_frozen_ops, frozen_ops_enabled,
                              lean_ops_summary)
from ..ops.recompute import disable_recompute, enable_recompute, recomputed_blocks
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
        memory_efficient (bool, optional): the frozen backbone's memory paths,
            which change how much the backward keeps, never what is computed
            (same outputs, same gradients, frozen tensors untouched): lean frozen
            ops (ResNet family: conv+BN folded into one node that saves nothing,
            ReLU saving a 1-byte mask; ``protune_mm/ops/frozen_ops.py``) and
            recomputation of the frozen transformer blocks in the backward (Swin,
            ViT: ``protune_mm/ops/recompute.py``, costs about one more forward
            of those blocks). None (default): the paths the backbone's adapter
            turns on for its family (lean ops where supported, recomputation on
            Swin and ViT); True: every path the family supports (refused where
            it has none); False: none, plain autograd.
        recompute (bool, optional): recomputation of the frozen blocks alone.
            None (default): as ``memory_efficient`` says; True: on (refused where
            the adapter names no blocks, or with ``memory_efficient=False``);
            False: off, e.g. lean ops only, or to trade memory for speed.
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
                 recompute: Optional[bool] = None,
                 adapter: Optional[Callable[[nn.Module], BackboneAdapter]] = None,
                 **options):
        super().__init__(init_cfg=init_cfg)
        name = type(self).__name__
        # Cheap checks first, so a bad config fails before the backbone is built.
        self.config = self.config_class.from_options(options, name)
        for field, value in (('memory_efficient', memory_efficient),
                             ('recompute', recompute)):
            if value is not None and not isinstance(value, bool):
                raise TypeError(f'{name}.{field} must be None (auto), True or '
                                f'False, got {value!r}')
        if memory_efficient is False and recompute:
            raise ValueError(f'{name}.recompute=True conflicts with memory_efficient='
                             'False (no memory path): drop one of them')
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
        self._resolve_memory_paths(memory_efficient, recompute)
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

    def _resolve_memory_paths(self, memory_efficient: Optional[bool],
                              recompute: Optional[bool]) -> None:
        """Set :attr:`lean_ops` and :attr:`recompute` (the paths on) and
        :attr:`memory_efficient` (any of them on) from the two switches."""
        name, adapter = type(self).__name__, self.adapter
        backbone = f'{type(self.backbone).__name__} ({adapter.family})'
        lean_ok = adapter.lean_ops()
        recompute_ok = adapter.recompute_blocks() is not None
        if memory_efficient and not (lean_ok or recompute_ok):
            raise ValueError(
                f'{name}.memory_efficient=True: {backbone} has no memory path (lean '
                'frozen ops support the ResNet family, recomputation the families '
                'with transformer block sites: Swin, ViT); leave memory_efficient '
                'unset (auto) or False')
        if recompute and not recompute_ok:
            raise ValueError(
                f'{name}.recompute=True: {backbone} names no frozen blocks to '
                'recompute (the families with transformer block sites: Swin, '
                'TimmViT, mmseg VisionTransformer); leave recompute unset or False')
        #: lean frozen ops on (conv+BN folded, ReLU masks).
        self.lean_ops = lean_ok and memory_efficient is not False
        if recompute is None:
            recompute = recompute_ok and (
                memory_efficient or (memory_efficient is None
                                     and adapter.recompute_by_default))
        #: frozen transformer blocks recomputed in the backward.
        self.recompute = recompute
        #: any memory path on.
        self.memory_efficient = self.lean_ops or self.recompute

    def _attach(self):
        handles = list(self.adapter.attach())
        handles += list(self.inject() or [])
        if self.lean_ops:
            enable_frozen_ops(self.backbone, self.adapter.conv_bn_pairs())
            handles.append(Handle(functools.partial(disable_frozen_ops,
                                                    self.backbone)))
        if self.recompute:
            # After inject: what acts inside a block is read when it is wrapped.
            enable_recompute(self.adapter.recompute_blocks())
            handles.append(Handle(functools.partial(disable_recompute, self.backbone)))
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
        if self.lean_ops:
            disable_frozen_ops(self.backbone)
        if self.recompute:
            disable_recompute(self.backbone)

    def enable(self) -> None:
        self.prompts_enabled = True
        if self.lean_ops and not frozen_ops_enabled(self.backbone):
            enable_frozen_ops(self.backbone, self.adapter.conv_bn_pairs())
        if self.recompute and not recomputed_blocks(self.backbone):
            enable_recompute(self.adapter.recompute_blocks())

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
        """Costs beyond the parameters, for the parameter report: which frozen
        paths are lean and which are recomputed."""
        return [self.memory_note()]

    def memory_note(self) -> str:
        """One line: the frozen backbone's memory paths in use."""
        paths = []
        if self.lean_ops:
            paths.append(f'lean frozen ops ({lean_ops_summary(self.backbone)})')
        if self.recompute:
            blocks = recomputed_blocks(self.backbone)
            paths.append(f'{len(blocks)} frozen blocks recomputed in the backward '
                         f'({compress_names(blocks)})')
        if not paths:
            return 'memory: plain autograd through the frozen backbone'
        return 'memory: ' + '; '.join(paths)

    def extra_repr(self) -> str:
        options = ', '.join(f'{k}={v!r}' for k, v in self.method_config().items())
        return f'method={self.method}' + (f', {options}' if options else '')


def compress_names(names: List[str]) -> str:
    """``['stages.0.blocks.0', 'stages.0.blocks.1', 'stages.1.blocks.0']`` ->
    ``'stages.0.blocks.0-1, stages.1.blocks.0'`` (runs of consecutive indices)."""
    groups: List[list] = []
    for n in names:
        prefix, _, last = n.rpartition('.')
        if last.isdigit() and groups and groups[-1][0] == prefix and \
                groups[-1][2] == int(last) - 1:
            groups[-1][2] = int(last)
        elif last.isdigit():
            groups.append([prefix, int(last), int(last)])
        else:
            groups.append([n, None, None])
    parts = []
    for prefix, first, last in groups:
        if first is None:
            parts.append(prefix)
        else:
            span = f'{first}' if first == last else f'{first}-{last}'
            parts.append(f'{prefix}.{span}' if prefix else span)
    return ', '.join(parts)


#: the earlier name of the base, kept for configs and user code.
FrozenBackboneWrapper = PromptMethod
