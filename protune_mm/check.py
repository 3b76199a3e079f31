"""The method contract, checked on one backbone: what every adapter test and
``tools/check_backbones.py`` assert for a wrapped backbone.

- identity at init: an untrained ``Frozen``/``ProTune`` computes exactly what the
  bare backbone computes; VPT (whose prompts start random) gives outputs of the
  bare backbone's shapes;
- frozen means frozen: after two optimizer steps on the prompts every frozen
  tensor (parameter or buffer) is bit-identical;
- every prompt learns: after one step (ProTune's ``scale`` starts at 0, so its
  block gets gradient only from the second step) every trainable tensor has a
  non-zero gradient.

The backbone's weights are random (a check cannot download pretrained ones), but
its BatchNorm statistics are first set from random inputs, as a pretrained
model's match its weights: with init statistics, deep random nets overflow or
vanish (features of 1e3 at Darknet-53's stage 4, 1e-9 at EfficientNet-B3's, NaN
in DetectoRS), and gradient checks then fail for reasons no trained model has.
"""
import copy
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import torch
from torch.nn.modules.batchnorm import _BatchNorm

from .registry import MODELS


@dataclass
class ContractResult:
    """Each check's outcome; ``failures`` names what failed and why."""
    trainable: int = 0
    failures: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def _features(out) -> List[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _features(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in _features(o)]
    raise TypeError(f'backbone output of type {type(out).__name__} holds no tensors')


def _eval_features(model, x) -> List[torch.Tensor]:
    model.eval()
    with torch.no_grad():
        return [t.clone() for t in _features(model(x))]


def calibrate_batchnorm(model: torch.nn.Module, input_shape: Sequence[int],
                        batches: int = 2) -> int:
    """Set the running statistics of every BatchNorm in ``model`` to the mean
    over ``batches`` random inputs of ``input_shape`` (at least 8 images each: the
    statistics of a 1x1 map from 2 images left HourglassNet's features at 1e8);
    every other module stays in eval mode. Returns the number of BatchNorm layers
    set."""
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)
             and m.track_running_stats]
    if not norms:
        return 0
    saved = [(m.momentum, m.eps) for m in norms]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
        # Training-mode batch norm refuses eps=0 (NAS-FCOS's caffe ResNet has it);
        # eps does not enter the statistics, only this pass's outputs.
        m.eps = max(m.eps, 1e-5)
        m.train()
    shape = (max(8, input_shape[0]), *input_shape[1:])
    try:
        with torch.no_grad():
            for _ in range(batches):
                model(torch.randn(*shape))
    finally:
        for m, (momentum, eps) in zip(norms, saved):
            m.momentum, m.eps = momentum, eps
        model.eval()
    return len(norms)


def check_method(method_cfg: dict, input_shape: Sequence[int] = (2, 3, 64, 64),
                 seed: int = 0, steps: int = 2,
                 bare: Optional[torch.nn.Module] = None) -> ContractResult:
    """Build ``method_cfg`` (a ``protune_mm`` method config) and its bare backbone,
    and check the method contract on a random input of ``input_shape``.

    ``bare``: the bare backbone already built from ``method_cfg['backbone']``, to
    check several methods on one build (its weights are overwritten with those of
    the method's inner backbone; it is not trained)."""
    torch.manual_seed(seed)
    method = MODELS.build(copy.deepcopy(method_cfg))
    if bare is None:
        bare = MODELS.build(copy.deepcopy(method_cfg['backbone']))
    bare.load_state_dict(method.backbone.state_dict())
    calibrate_batchnorm(bare, input_shape)
    method.backbone.load_state_dict(bare.state_dict())
    # Frozen as the method freezes it: requires_grad alone can change the
    # rounding (torch's MultiheadAttention on non-contiguous inputs, as in
    # spatial-reduction attention, differs by ~1e-7 even under no_grad).
    bare.requires_grad_(False)
    result = ContractResult()
    x = torch.randn(*input_shape)

    ref, got = _eval_features(bare, x), _eval_features(method, x)
    if [t.shape for t in ref] != [t.shape for t in got]:
        result.failures.append(f'output shapes {[tuple(t.shape) for t in got]} differ '
                               f'from the bare backbone\'s {[tuple(t.shape) for t in ref]}')
    elif method.identity_at_init and not all(torch.equal(a, b) for a, b in zip(ref, got)):
        diff = max((a - b).abs().max().item() for a, b in zip(ref, got))
        result.failures.append(f'untrained outputs differ from the bare backbone\'s '
                               f'(max abs difference {diff:.3g})')

    params = {n: p for n, p in method.named_parameters() if p.requires_grad}
    result.trainable = sum(p.numel() for p in params.values())
    frozen_before = {k: v.clone() for k, v in method.state_dict().items()
                     if k in method.frozen_keys}
    if not params:
        return result
    # Adam, like the AdamW of training: its step does not grow with the scale of
    # the features, which reach 1e3 in some random backbones.
    optimizer = torch.optim.Adam(params.values(), lr=1e-3)
    method.train()
    no_grad: Dict[str, str] = {}
    for step in range(steps):
        optimizer.zero_grad()
        loss = sum(t.float().pow(2).mean() for t in _features(method(x)))
        loss.backward()
        if step == steps - 1:
            for n, p in params.items():
                if p.grad is None:
                    no_grad[n] = 'no gradient'
                elif not torch.any(p.grad != 0):
                    no_grad[n] = 'zero gradient'
        optimizer.step()
    if no_grad:
        shown = ', '.join(f'{n} ({why})' for n, why in list(no_grad.items())[:5])
        more = f' and {len(no_grad) - 5} more' if len(no_grad) > 5 else ''
        result.failures.append(f'prompts that do not learn: {shown}{more}')
    after = method.state_dict()
    changed = [k for k, v in frozen_before.items() if not torch.equal(v, after[k])]
    if changed:
        result.failures.append(f'{len(changed)} frozen tensors changed, e.g. {changed[0]}')
    return result
