"""Backbone adapters: what a prompt method may know about a backbone's inside.

One adapter per backbone family (one file each in this folder) says everything a
method needs: the stages (entry and exit modules, widths), how a hooked tensor
becomes an NCHW feature map and back (with any per-call context such as Swin's
``hw_shape`` read from the hook's arguments), which stages reach a returned
feature, and what else the family offers (prompt tokens, window attention, lean
frozen ops). Methods never look inside a backbone themselves.

Adapters are found by class, over the MRO, so subclasses count (ResNetV1c is a
ResNet). A user's project adds one without editing this package::

    from protune_mm.adapters import BackboneAdapter, Stage, register_adapter

    @register_adapter('my_project.models.MyNet')      # or the class itself
    class MyNetAdapter(BackboneAdapter):
        def stages(self):
            return [Stage(f'blocks.{i}', b, b, b.width, b.width)
                    for i, b in enumerate(self.backbone.blocks)]
"""
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Type, Union

import torch
import torch.nn as nn


@dataclass
class Stage:
    """One stage of a backbone.

    Attributes:
        name: readable name, e.g. ``'layer2'`` or ``'blocks.3-5'``.
        first: module whose input is the stage input (forward pre-hook target).
        last: module whose output is the stage output (forward hook target).
        in_channels / out_channels: feature widths at stage input / output; a
            tuple of widths where the stage takes / returns a list of maps, one per
            branch (HRNet); None where that side is not a feature map.
        input_reaches_output / output_reaches_output: whether a change of the
            stage input / output can reach a feature the backbone returns (a
            prompt that cannot would get no gradient, and DDP fails on it).
    """
    name: str
    first: nn.Module
    last: nn.Module
    in_channels: Union[int, Tuple[int, ...], None]
    out_channels: Union[int, Tuple[int, ...], None]
    input_reaches_output: bool = True
    output_reaches_output: bool = True

    @classmethod
    def single(cls, name: str, module: nn.Module, width, index: int, last_out: int,
               out_width=None) -> 'Stage':
        """A stage that is one module, layer ``index`` of a sequence whose last
        returned layer is ``last_out``; ``out_width`` defaults to ``width``."""
        return cls(name, module, module, width, width if out_width is None else out_width,
                   *reaching([index], last_out))


class BackboneAdapter:
    """Base adapter. The defaults describe a backbone as an image-to-features
    function with no known inside: enough for ``Frozen`` and VPT pad prompts.

    Subclasses override :meth:`stages`, and where the stage tensors are not NCHW
    maps, :meth:`to_map` / :meth:`from_map`. Capabilities are methods returning
    ``None`` when the family lacks them.
    """

    #: family name used in messages and reports.
    family = 'image backbone'
    #: the backbone's own ``training`` flag picks which features it returns
    #: (PIDNet, DDRNet: auxiliary outputs for the training losses), not how it
    #: computes: the method gives that one flag the wrapper's mode, while every
    #: submodule stays in eval (BatchNorm statistics, dropout frozen).
    mode_selects_outputs = False
    #: where a Pro-tuning block acts by default: on each stage's 'input' or
    #: 'output'. The transfer study (docs/transfer_study.md) measured the input
    #: better on ResNet and the output better on a plain ViT; unmeasured families
    #: keep 'input'.
    protune_place = 'input'

    def __init__(self, backbone: nn.Module):
        self.backbone = backbone

    # -- stages --------------------------------------------------------------------
    def stages(self) -> List[Stage]:
        raise TypeError(
            f'no stages are described for {qualname(type(self.backbone))}: name its '
            "stage modules (ProTune(stage_modules=['layer1', ...])) or register a "
            'BackboneAdapter for it with protune_mm.adapters.register_adapter '
            f'(registered: {supported()})')

    def to_map(self, x: torch.Tensor, args: tuple) -> torch.Tensor:
        """The (B, C, H, W) map held by ``x``, a stage's hooked input or output;
        ``args`` are the positional arguments of that call (per-call context).
        A multi-branch stage's list of maps is passed on as a list."""
        if isinstance(x, (list, tuple)):
            return [self.to_map(t, args) for t in x]
        if x.dim() != 4:
            raise ValueError(f'{self.family}: expected a (B, C, H, W) feature map at '
                             f'the stage, got shape {tuple(x.shape)}')
        return x

    def from_map(self, y: torch.Tensor, x: torch.Tensor, args: tuple) -> torch.Tensor:
        """Put the map ``y`` back into the layout of ``x``."""
        if isinstance(x, (list, tuple)):
            return type(x)(y)
        return y

    def apply(self, fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
              args: tuple) -> torch.Tensor:
        return self.from_map(fn(self.to_map(x, args)), x, args)

    # -- capabilities --------------------------------------------------------------
    def token_sites(self) -> Optional['TokenSites']:
        """Where prompt tokens go (token backbones), else None."""
        return None

    def window_sites(self) -> Optional[List['WindowSite']]:
        """Window attentions that take prompt keys/values, else None."""
        return None

    def kv_sites(self) -> Optional[List['KeyValueSite']]:
        """Attentions whose keys/values take prompt tokens (spatial-reduction
        attention of pyramid transformers), else None."""
        return None

    def block_sites(self) -> Optional[List['BlockSite']]:
        """The transformer blocks, for methods that act inside them (LoRA on
        their linear layers, adapters beside their branches), else None."""
        return None

    def conv_bn_pairs(self) -> Optional[List[Tuple[nn.Module, str, str]]]:
        """(owner, conv name, BN name) of the frozen conv -> BN pairs whose BN is
        applied to the conv's output and to nothing else, which the lean frozen
        ops (``protune_mm.ops.frozen_ops``) fold; None where the family has no
        lean ops."""
        return None

    def lean_ops(self) -> bool:
        """Whether lean frozen ops apply."""
        return self.conv_bn_pairs() is not None

    #: whether ``memory_efficient=None`` (auto) recomputes the frozen blocks
    #: (``recompute_blocks``) in the backward: where the blocks are most of what
    #: autograd saves and recomputing them costs a forward (token families).
    recompute_by_default = False

    def recompute_blocks(self) -> Optional[List[nn.Module]]:
        """The frozen blocks that may be recomputed in the backward
        (``protune_mm.ops.recompute``): by default the transformer blocks of
        :meth:`block_sites` that reach a returned feature; None where the family
        has none."""
        sites = self.block_sites()
        if sites is None:
            return None
        return [site.block for site in sites if site.reaches_output]

    def attach(self) -> list:
        """Hooks the adapter itself needs to capture per-call context; returns
        their handles (removed with the method)."""
        return []


@dataclass
class TokenSites:
    """A token backbone: prompt tokens go after ``num_prefix_tokens`` tokens at
    the input of ``blocks[i]`` for ``i < num_reaching`` (later blocks do not
    reach a returned feature)."""
    blocks: Sequence[nn.Module]
    num_prefix_tokens: int
    embed_dim: int
    patch_size: Tuple[int, int]
    num_reaching: int


@dataclass
class WindowSite:
    """One block with window attention: ``attn`` computes attention inside a
    window (called as ``attn(windows, mask=mask)``), ``norm`` is the norm its
    tokens went through, ``width`` the token width."""
    name: str
    attn: nn.Module
    norm: nn.Module
    width: int
    patch_size: Tuple[int, int]


@dataclass
class KeyValueSite(WindowSite):
    """One attention whose keys/values can take prompt tokens (the fields of a
    window site): ``attn`` is a ``torch.nn.MultiheadAttention`` (its
    ``batch_first`` gives the layout), ``norm`` the last norm its keys/values went
    through (the prompts go through it too), ``width`` the token width."""


@dataclass
class BlockSite:
    """One transformer block, called as ``block(x, *context)`` on its layout's
    tokens. ``attn`` / ``mlp`` are its attention and MLP modules (their frozen
    linear layers are what LoRA adapts); ``attn_out`` / ``mlp_out`` are the
    modules whose output is each branch as it enters the residual stream (after
    any layer scale), and ``attn_adds_residual`` / ``mlp_adds_residual`` say
    whether that output already includes the stream (mmcv's attention and FFN
    take ``identity=``) or is the branch alone, added to the block input ``x``
    (timm, Swin's attention). ``reaches_output``: whether a change in the block
    can reach a returned feature."""
    name: str
    block: nn.Module
    attn: nn.Module
    mlp: nn.Module
    attn_out: nn.Module
    mlp_out: nn.Module
    attn_adds_residual: bool
    mlp_adds_residual: bool
    width: int
    reaches_output: bool


# -- registration ----------------------------------------------------------------------
_ADAPTERS: Dict[str, Type[BackboneAdapter]] = {}


def qualname(cls: type) -> str:
    return f'{cls.__module__}.{cls.__qualname__}'


def register_adapter(*targets: Union[str, type]):
    """Class decorator: the adapter for backbones of these classes (a class or its
    dotted path ``package.module.Class``; subclasses count). A later registration
    for the same class replaces the earlier one."""
    if not targets:
        raise TypeError('register_adapter needs at least one backbone class or path')

    def register(adapter: Type[BackboneAdapter]):
        if not (isinstance(adapter, type) and issubclass(adapter, BackboneAdapter)):
            raise TypeError(f'{adapter!r} is not a BackboneAdapter subclass')
        for t in targets:
            _ADAPTERS[t if isinstance(t, str) else qualname(t)] = adapter
        return adapter
    return register


def registered_adapters() -> Dict[str, Type[BackboneAdapter]]:
    return dict(_ADAPTERS)


def adapter_for(backbone: nn.Module) -> BackboneAdapter:
    """The adapter of the nearest class in ``backbone``'s MRO that has one, or the
    base adapter (no stages) if none does."""
    for cls in type(backbone).__mro__:
        adapter = _ADAPTERS.get(qualname(cls))
        if adapter is not None:
            return adapter(backbone)
    return BackboneAdapter(backbone)


def supported() -> str:
    return ', '.join(sorted(_ADAPTERS))


def reaching(indices: Sequence[int], last_out: int) -> Tuple[bool, bool]:
    """(input reaches, output reaches) for a stage made of the sequential layers
    ``indices`` when the last returned layer is ``last_out``."""
    return indices[0] <= last_out, indices[-1] <= last_out
