"""Lean forward/backward through the frozen conv -> BN -> ReLU chains of a backbone.

Prompt methods need the gradient of the loss with respect to the *input* of the
frozen layers (it flows back to the first prompt), never with respect to their
weights. Plain autograd does not know that: every frozen conv keeps its input,
every eval-mode BatchNorm keeps its input and every ReLU keeps its output, which is
what made a prompt-tuned backbone use more memory than full fine-tuning.

:func:`enable_frozen_ops` changes how the frozen conv -> BN -> ReLU chains that the
backbone's adapter names (``conv_bn_pairs``; the ResNet family today) are computed,
not what they compute:

- conv followed by eval-mode BN runs as one autograd node whose forward is the
  stock conv then BN (the same ops, so the outputs are bit-identical to the bare
  backbone's) and whose backward is the input gradient only: a transposed conv
  with the BN folded into the conv weight, recomputed from the frozen tensors
  (see :func:`conv_input_grad`). It saves no activation at all;
- the BN right after such a conv becomes the identity (its work is in that node);
- ReLU saves a bool mask (1 byte per element) instead of its float output.

Only ``forward`` of these modules is rebound (an instance attribute): parameters,
buffers, state-dict keys, hooks and the backbone's own ``forward`` code stay as they
are, and :func:`disable_frozen_ops` restores the stock behaviour. Without an input
gradient (inference) a pair computes the stock way; so does a pair whose BN is in
training mode or which holds a tensor that requires grad after all.
"""
import functools
from typing import List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from ..rebind import rebind_forward, unbind_forward

#: attribute marking a module whose forward was rebound here.
_MARK = '_protune_frozen_op'


def fold_conv_bn(conv: nn.Conv2d, bn: _BatchNorm) -> Tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of the conv equal to ``bn(conv(x))`` with ``bn`` in eval mode."""
    return _fold(conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean,
                 bn.running_var, bn.eps)


def _fold(weight, bias, bn_weight, bn_bias, mean, var, eps):
    """torch.nn.utils.fusion.fuse_conv_bn_weights on plain tensors: that one wraps
    its results in nn.Parameter, which torch.compile cannot trace in a backward."""
    scale = torch.rsqrt(var + eps)
    if bn_weight is not None:
        scale = bn_weight * scale
    shift = -mean * scale
    if bn_bias is not None:
        shift = shift + bn_bias
    if bias is not None:
        shift = shift + bias * scale
    return weight * scale.reshape(-1, 1, 1, 1), shift


def conv_input_grad(grad: torch.Tensor, weight: torch.Tensor, stride, padding,
                    dilation, groups: int, input_shape: torch.Size) -> torch.Tensor:
    """Gradient of ``conv2d(x, weight, None, stride, padding, dilation, groups)``
    w.r.t. ``x``.

    A transposed conv, except for a strided 1x1 conv (ResNet's downsample): there
    it is a 1x1 conv of the gradient written back to the strided positions, about
    4x faster on CPU than the strided transposed conv, which also fills and copies
    a tensor of the input's size (as ``torch.nn.grad.conv2d_input`` does for
    every conv).
    """
    if (weight.shape[2:] == (1, 1) and tuple(padding) == (0, 0) and groups == 1
            and tuple(stride) != (1, 1)):
        grad_x = grad.new_zeros(input_shape)
        grad_x[:, :, ::stride[0], ::stride[1]] = F.conv2d(grad, weight.transpose(0, 1))
        return grad_x
    # Rows/columns the strided forward never reached get no gradient.
    output_padding = tuple(
        input_shape[i + 2] - ((grad.shape[i + 2] - 1) * stride[i] - 2 * padding[i]
                              + dilation[i] * (weight.shape[i + 2] - 1) + 1)
        for i in range(2))
    return F.conv_transpose2d(grad, weight, None, stride, padding, output_padding,
                              groups, dilation)


class _FrozenConvBN(torch.autograd.Function):
    """Frozen conv+BN: the stock forward, and a backward that computes the input
    gradient only, with the BN folded into the conv weight, saving no activation.

    Takes tensors and the conv geometry, not modules, so that torch.compile
    traces it as one graph (forward and backward)."""

    @staticmethod
    def forward(ctx, x, weight, bias, bn_weight, bn_bias, mean, var, eps, stride,
                padding, dilation, groups):
        ctx.geometry = (stride, padding, dilation, groups, eps)
        ctx.input_shape, ctx.input_dtype = x.shape, x.dtype
        ctx.save_for_backward(weight, bn_weight, mean, var)
        y = F.conv2d(x, weight, bias, stride, padding, dilation, groups)
        return F.batch_norm(y, mean, var, bn_weight, bn_bias, False, 0., eps)

    @staticmethod
    def backward(ctx, grad):
        weight, bn_weight, mean, var = ctx.saved_tensors
        stride, padding, dilation, groups, eps = ctx.geometry
        w, _ = _fold(weight, None, bn_weight, None, mean, var, eps)
        grad_x = conv_input_grad(grad, w.to(grad.dtype), stride, padding, dilation,
                                 groups, ctx.input_shape)
        return (grad_x.to(ctx.input_dtype), ) + (None, ) * 11


class _MaskReLU(torch.autograd.Function):
    """ReLU that keeps a bool mask for its backward instead of its float output."""

    @staticmethod
    def forward(ctx, x, inplace: bool):
        if inplace:
            ctx.mark_dirty(x)
            x.relu_()
            out = x  # the dirty input itself (torch.compile requires it)
        else:
            out = torch.relu(x)
        ctx.save_for_backward(out > 0)
        return out

    @staticmethod
    def backward(ctx, grad):
        mask, = ctx.saved_tensors
        return grad * mask, None


def _needs_input_grad(x: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and x.requires_grad


def _is_frozen(*modules: nn.Module) -> bool:
    return not any(p.requires_grad for m in modules for p in m.parameters())


def _paired(owner: nn.Module, conv_name: str, bn_name: str) -> bool:
    """Both halves of a folded pair are still in place (a module swapped in later,
    e.g. by ``revert_sync_batchnorm``, computes by itself)."""
    conv, bn = owner._modules.get(conv_name), owner._modules.get(bn_name)
    return (conv is not None and bn is not None and conv.__dict__.get(_MARK, False)
            and bn.__dict__.get(_MARK, False))


def _conv_bn_forward(conv: nn.Conv2d, owner: nn.Module, conv_name: str,
                     bn_name: str, x: torch.Tensor):
    """Rebound ``conv.forward``: computes ``bn(conv(x))`` while ``bn.forward`` is
    the identity."""
    if not _paired(owner, conv_name, bn_name):
        return type(conv).forward(conv, x)
    bn = owner._modules[bn_name]
    if bn.training or not _is_frozen(conv, bn):
        # Folding needs running statistics and frozen tensors: stock computation.
        return type(bn).forward(bn, type(conv).forward(conv, x))
    if _needs_input_grad(x):
        return _FrozenConvBN.apply(x, conv.weight, conv.bias, bn.weight, bn.bias,
                                   bn.running_mean, bn.running_var, bn.eps,
                                   conv.stride, conv.padding, conv.dilation,
                                   conv.groups)
    return type(bn).forward(bn, type(conv).forward(conv, x))


def _folded_bn_forward(bn: _BatchNorm, owner: nn.Module, conv_name: str,
                       bn_name: str, x: torch.Tensor):
    """Rebound ``bn.forward``: the identity, as the conv before it applied it."""
    if not _paired(owner, conv_name, bn_name):
        return type(bn).forward(bn, x)
    return x


def _relu_forward(relu: nn.ReLU, x: torch.Tensor):
    if _needs_input_grad(x):
        return _MaskReLU.apply(x, relu.inplace)
    return torch.relu_(x) if relu.inplace else torch.relu(x)


def _plain_conv(module) -> bool:
    # nn.Conv2d or mmcv's Conv2d wrapper (same computation); DCN & co. excluded.
    cls = type(module)
    return (module is not None and isinstance(module, nn.Conv2d) and module.padding_mode == 'zeros'
            and not isinstance(module.padding, str)
            and (cls is nn.Conv2d or (cls.__name__ == 'Conv2d'
                                      and cls.__module__.startswith('mmcv.'))))


def _foldable_bn(module) -> bool:
    return (module is not None and isinstance(module, _BatchNorm) and module.track_running_stats
            and module.running_mean is not None)


def foldable_pairs(owner: nn.Module, candidates) -> List[Tuple[nn.Module, str, str]]:
    """The (owner, conv name, bn name) of ``candidates`` (child-name pairs of
    ``owner`` that an adapter knows to be conv -> BN with the BN applied to the
    conv's output and nothing else) that the lean ops can fold: a plain ``Conv2d``
    (not DCN & co.) and a BN with running statistics."""
    pairs = []
    for conv_name, bn_name in candidates:
        conv = owner._modules.get(conv_name)
        bn = owner._modules.get(bn_name) if bn_name else None
        if _plain_conv(conv) and _foldable_bn(bn):
            pairs.append((owner, conv_name, bn_name))
    return pairs


def enable_frozen_ops(backbone: nn.Module,
                      pairs: List[Tuple[nn.Module, str, str]]) -> int:
    """Switch a frozen backbone to the lean frozen ops (see module docstring):
    ``pairs`` are its foldable conv -> BN pairs, which only its adapter knows
    (``adapter.conv_bn_pairs()``); every ``nn.ReLU`` saves a mask. Returns the
    number of folded pairs. A pair whose tensors require grad when it runs
    computes the stock way."""
    for owner, conv_name, bn_name in pairs:
        conv, bn = owner._modules[conv_name], owner._modules[bn_name]
        _rebind(conv, functools.partial(_conv_bn_forward, conv, owner, conv_name, bn_name))
        _rebind(bn, functools.partial(_folded_bn_forward, bn, owner, conv_name, bn_name))
    for module in backbone.modules():
        if type(module) is nn.ReLU:
            _rebind(module, functools.partial(_relu_forward, module))
    return len(pairs)


def _rebind(module: nn.Module, forward) -> None:
    rebind_forward(module, forward)
    setattr(module, _MARK, True)


def disable_frozen_ops(backbone: nn.Module) -> None:
    """Undo :func:`enable_frozen_ops`: every module computes with its class forward."""
    for module in backbone.modules():
        if module.__dict__.pop(_MARK, False):
            unbind_forward(module)


def frozen_ops_enabled(backbone: nn.Module) -> bool:
    return any(module.__dict__.get(_MARK, False) for module in backbone.modules())


def lean_ops_summary(backbone: nn.Module) -> str:
    """What the lean frozen ops changed in ``backbone``, for the parameter report."""
    marked = [m for m in backbone.modules() if m.__dict__.get(_MARK, False)]
    pairs = sum(isinstance(m, _BatchNorm) for m in marked)
    relus = sum(type(m) is nn.ReLU for m in marked)
    return f'{pairs} conv+BN pairs folded, {relus} ReLU modules saving masks'
