"""Paired, in-process timing of the backbone alone: the stock ResNet against the
wrapped ones.

    python tools/benchmark_backbone.py [--depth 50] [--batch 2] [--size 320] \\
        [--rounds 9] [--threads 2]

What is measured and how: ``protune_mm/benchmark/backbone.py``.
"""
import argparse

from protune_mm.benchmark import backbone as bench


def format_table(summary: dict) -> str:
    """Per variant: median train and infer seconds and their ratios (x) to full."""
    from prettytable import PrettyTable
    table = PrettyTable(['variant', 'train s', 'train x', 'infer s', 'infer x'], align='r')
    table.align['variant'] = 'l'
    for name, cols in summary.items():
        table.add_row([name, *(f'{c:.3f}' for c in cols)])
    return table.get_string()


def main(argv=None):
    import torch
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
    models = bench.build_variants(args.depth)
    x = torch.randn(args.batch, 3, args.size, args.size)
    times = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            times[name].append(bench.time_round(name, model, x))
    print(f'ResNet-{args.depth}, batch {args.batch} x {args.size}^2, {args.threads} '
          f'threads, {args.rounds - 1} rounds (+1 warm-up), medians; x = median '
          'of per-round ratios to full')
    print(format_table(bench.summarise(times)))


if __name__ == '__main__':
    main()
