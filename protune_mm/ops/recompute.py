"""Recomputation of frozen transformer blocks in the backward.

A prompt before (or inside) a frozen transformer block needs the gradient of the
loss with respect to the block's input, and plain autograd gets it by saving, in
every frozen block, the inputs of its norms, linear layers, attention and
activations: most of what full fine-tuning saves, although no frozen weight gets
a gradient. :func:`enable_recompute` runs each frozen block the adapter names
(``BackboneAdapter.recompute_blocks``) under non-reentrant activation
checkpointing (``torch.utils.checkpoint.checkpoint(use_reentrant=False)``): the
forward keeps only the block's inputs, and the backward runs the block's forward
again to get its input gradient.

What is and is not recomputed:

- only ``forward`` of the block is checkpointed (an instance attribute, see
  ``protune_mm.rebind``): the block's own forward pre-hooks and hooks (VPT token
  prompts, Pro-tuning blocks, the adapters' per-call hooks, which may keep
  state) run once, outside, as without recomputation; prompts and heads are never
  recomputed;
- what acts *inside* the block (a hook on a submodule, a rebound forward such as
  VPT's window prompts) is part of the block's forward: it is recomputed, with
  the random state of the first run (``preserve_rng_state``, so prompt dropout
  draws the same mask), and its prompts get their exact gradient;
- a block that holds a trainable tensor of its own, or checkpoints itself
  (mmcv/mmdet ``with_cp``), computes the stock way;
- without autograd (``no_grad``, inference) or when nothing the block computes
  with requires grad (the frozen blocks before the first prompt), the block runs
  plainly: autograd records nothing there anyway.

Outputs are those of the stock forward (the same ops on the same tensors), and
so are the gradients: the backward recomputes the same ops.
"""
import functools
from typing import List, Sequence

import torch
import torch.nn as nn
from torch.utils._pytree import tree_leaves
from torch.utils.checkpoint import checkpoint

from ..rebind import rebind_forward, unbind_forward

#: attribute marking a block whose forward was rebound here.
_MARK = '_protune_recompute'


def _acts_inside(block: nn.Module) -> bool:
    """Whether something from outside the block (a hook or a rebound forward of a
    submodule, e.g. a method's prompts) computes inside it: it may use trainable
    tensors even when the block's input requires no grad."""
    return any('forward' in m.__dict__ or m._forward_hooks or m._forward_pre_hooks
               for m in block.modules() if m is not block)


def _needs_recompute(block: nn.Module, acts_inside: bool, args, kwargs) -> bool:
    if not torch.is_grad_enabled() or any(p.requires_grad for p in block.parameters()):
        return False
    return acts_inside or any(isinstance(t, torch.Tensor) and t.requires_grad
                              for t in tree_leaves((args, kwargs)))


def _recomputed_forward(block: nn.Module, acts_inside: bool, *args, **kwargs):
    """Rebound ``block.forward``: the class's forward, checkpointed when a
    backward through the block is needed."""
    forward = type(block).forward
    if _needs_recompute(block, acts_inside, args, kwargs):
        return checkpoint(forward, block, *args, use_reentrant=False, **kwargs)
    return forward(block, *args, **kwargs)


def recomputable(block: nn.Module) -> bool:
    """A block this module may checkpoint: one that does not checkpoint itself."""
    return not getattr(block, 'with_cp', False)


def enable_recompute(blocks: Sequence[nn.Module]) -> List[nn.Module]:
    """Checkpoint each of ``blocks`` (frozen transformer blocks, from the
    adapter) in the backward, see the module docstring; returns the blocks
    changed. Call it after the method attached its hooks: whether something acts
    inside a block is read here."""
    changed = []
    for block in blocks:
        if not recomputable(block):
            continue
        rebind_forward(block, functools.partial(_recomputed_forward, block,
                                                _acts_inside(block)))
        setattr(block, _MARK, True)
        changed.append(block)
    return changed


def disable_recompute(backbone: nn.Module) -> None:
    """Undo :func:`enable_recompute`: every block computes with its class forward."""
    for module in backbone.modules():
        if module.__dict__.pop(_MARK, False):
            unbind_forward(module)


def recomputed_blocks(backbone: nn.Module) -> List[str]:
    """Names (in ``backbone``) of the blocks recomputed in the backward."""
    return [name for name, module in backbone.named_modules()
            if module.__dict__.get(_MARK, False)]
