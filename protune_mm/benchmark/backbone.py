"""Paired, in-process timing of the backbone alone: the stock ResNet against the
wrapped ones, all built in one process and interleaved step by step.

``tools/benchmark.py`` times whole detector steps, each variant in its own
process; on a shared CPU its rounds differ by more than the few percent a prompt
costs. Here every round times each variant once, back to back, and the result is
the median over rounds of the per-round ratio to the stock backbone, so slow
phases of the machine hit both sides of a ratio alike.

Variants (mmdet ResNet, batch x 3 x size x size, random init):
  full       the stock backbone as in the stock Mask R-CNN config (frozen_stages=1),
             trained: forward + backward with weight gradients of layers 2-4;
  frozen     ``protune_mm.Frozen`` with the gradient taken to the image, i.e. the
             backward a prompt at the input needs (VPT pad's floor);
  frozen+me  the same with ``memory_efficient=True``;
  protune+me ``protune_mm.ProTune`` (all 4 stages), ``memory_efficient=True``;
  protune_s123+me  the same on stages 1-3 (no backward through layer1).
Training: forward, then backward of the sum of the output means. Inference:
forward in eval mode under ``no_grad``.

Command line: ``protune_mm/cli/benchmark_backbone.py``.
"""
import statistics
import time

import torch


def build_variants(depth: int) -> dict:
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    from protune_mm import Frozen, ProTune
    register_all_modules()
    stock = dict(type='ResNet', depth=depth, out_indices=(0, 1, 2, 3), frozen_stages=1,
                 norm_eval=True, style='pytorch')

    def wrap(kind, **kwargs):
        return MODELS.build(dict(type=kind, backbone=dict(stock, frozen_stages=-1),
                                 **kwargs))

    return {
        'full': MODELS.build(stock),
        'frozen': wrap(Frozen, memory_efficient=False),
        'frozen+me': wrap(Frozen, memory_efficient=True),
        'protune+me': wrap(ProTune, memory_efficient=True),
        'protune_s123+me': wrap(ProTune, memory_efficient=True, stages=[1, 2, 3]),
    }


def time_round(name: str, model, x) -> tuple:
    model.train()
    # Frozen variants: the gradient goes to the image, as for a prompt before it.
    xi = x.clone().requires_grad_(name.startswith('frozen'))
    t0 = time.perf_counter()
    sum(o.mean() for o in model(xi)).backward()
    train = time.perf_counter() - t0
    model.zero_grad(set_to_none=True)
    model.eval()
    with torch.no_grad():
        t0 = time.perf_counter()
        model(x)
        infer = time.perf_counter() - t0
    return train, infer


def summarise(times: dict, reference: str = 'full') -> dict:
    """``{variant: [(train s, infer s) per round]}`` -> per variant (median train s,
    median of per-round train ratios to ``reference``, median infer s, its ratio),
    without the first round (warm-up). Ratios are taken round by round, so a slow
    spell of the machine cancels out of each."""
    ref = times[reference][1:]
    out = {}
    for name, rows in times.items():
        rows = rows[1:]
        cols = []
        for k in (0, 1):
            cols += [statistics.median(r[k] for r in rows),
                     statistics.median(r[k] / f[k] for r, f in zip(rows, ref))]
        out[name] = tuple(cols)
    return out
