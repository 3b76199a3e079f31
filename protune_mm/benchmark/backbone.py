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

    python tools/benchmark_backbone.py [--depth 50] [--batch 2] [--size 320] \\
        [--rounds 9] [--threads 2]
"""
import argparse
import statistics
import time

import torch


def build_variants(depth: int) -> dict:
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    import protune_mm  # noqa: F401  (registers the wrappers)
    register_all_modules()
    stock = dict(type='ResNet', depth=depth, out_indices=(0, 1, 2, 3), frozen_stages=1,
                 norm_eval=True, style='pytorch')

    def wrap(kind, **kwargs):
        return MODELS.build(dict(type=kind, backbone=dict(stock, frozen_stages=-1),
                                 **kwargs))

    return {
        'full': MODELS.build(stock),
        'frozen': wrap('protune_mm.Frozen', memory_efficient=False),
        'frozen+me': wrap('protune_mm.Frozen', memory_efficient=True),
        'protune+me': wrap('protune_mm.ProTune', memory_efficient=True),
        'protune_s123+me': wrap('protune_mm.ProTune', memory_efficient=True,
                                stages=[1, 2, 3]),
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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--depth', type=int, default=50, choices=(18, 34, 50, 101))
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--size', type=int, default=320)
    p.add_argument('--rounds', type=int, default=9,
                   help='interleaved rounds; the first is warm-up and not counted')
    p.add_argument('--threads', type=int, default=2)
    args = p.parse_args(argv)
    if args.rounds < 2 or args.batch < 1 or args.size < 32 or args.threads < 1:
        p.error('--rounds must be >= 2, --batch and --threads >= 1, --size >= 32')
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = build_variants(args.depth)
    x = torch.randn(args.batch, 3, args.size, args.size)
    times = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            times[name].append(time_round(name, model, x))
    print(f'ResNet-{args.depth}, batch {args.batch} x {args.size}^2, {args.threads} '
          f'threads, {args.rounds - 1} rounds (+1 warm-up), medians; ratio = median '
          'of per-round ratios to full')
    print(f"{'variant':<16} {'train s':>8} {'ratio':>6} {'infer s':>8} {'ratio':>6}")
    for name, cols in summarise(times).items():
        print(f'{name:<16} {cols[0]:>8.3f} {cols[1]:>6.3f} {cols[2]:>8.3f} '
              f'{cols[3]:>6.3f}')


if __name__ == '__main__':
    main()
