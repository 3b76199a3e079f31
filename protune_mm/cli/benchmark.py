"""Cost of full fine-tuning vs frozen head-only vs Pro-tuning vs VPT on one model.

Each variant runs in its own fresh process (so peak memory and allocator state of
one variant never leak into the next); variants are interleaved over ``--repeats``
rounds and the median of each measure over rounds is reported, with ratios to the
first variant (full fine-tuning by default). Weights are random (``init_cfg=None``,
no network); the batch is a fixed synthetic one. What is measured and how:
``protune_mm/benchmark/measure.py``; the variants: ``benchmark/model.py``.

Examples::

    python tools/benchmark.py mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py \\
        --methods full frozen protune protune+me vpt vpt+me --repeats 3 \\
        --out benchmarks/mask-rcnn_r50_cpu.json
    python tools/benchmark.py mmseg::upernet/upernet_r50_4xb2-40k_cityscapes-512x1024.py \\
        --methods full frozen protune+me --steps 3 --repeats 1
    # a variant with its own options: LABEL=METHOD[+me][:JSON kwargs]
    python tools/benchmark.py CONFIG --methods full \\
        'pt_s123=protune+me:{"stages": [1, 2, 3]}'

``+me`` builds the wrapper with ``memory_efficient=True`` (every memory path of the
family: lean frozen ops on the ResNet family, ``protune_mm/ops/frozen_ops.py``;
recomputed frozen blocks on Swin and the ViTs, ``protune_mm/ops/recompute.py``);
without it the variant is built with ``memory_efficient=False``, the plain autograd
path.
"""
import argparse
import json
import os
import os.path as osp
import sys

from protune_mm.benchmark.batch import parse_size
from protune_mm.benchmark.model import parse_variant, variant_methods
from protune_mm.benchmark.report import aggregate, draw_chart, format_table
from protune_mm.benchmark.rounds import RESULT_TAG, run_all
from protune_mm.fileio import write_json


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config', help='model config, e.g. '
                   'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py')
    p.add_argument('--methods', nargs='+', default=['full', 'frozen', 'protune', 'vpt'],
                   help='variants [LABEL=]METHOD[+me][:JSON]; METHOD in '
                   f'{variant_methods()}; the first is the reference of the ratios')
    p.add_argument('--device', default='cpu', help="'cpu' or 'cuda[:N]'")
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--size', default='320',
                   help="image size: N (square) or WxH, e.g. 1333x800")
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--steps', type=int, default=5, help='timed training steps')
    p.add_argument('--infer-steps', type=int, default=5)
    p.add_argument('--repeats', type=int, default=1,
                   help='interleaved rounds of all variants (median over rounds)')
    p.add_argument('--threads', type=int, default=0,
                   help='torch intra-op threads (0: torch default)')
    p.add_argument('--no-timing', action='store_true',
                   help='sizes only (no training or inference)')
    p.add_argument('--out', help='JSON file of all runs and the medians')
    p.add_argument('--chart', help='PNG chart of the ratios (default: --out with .png)')
    p.add_argument('--worker', help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if min(parse_size(args.size)) < 1:
        raise ValueError('--size must be >= 1')
    for field in ('batch', 'steps', 'infer_steps', 'repeats'):
        if getattr(args, field) < 1:
            raise ValueError(f'--{field.replace("_", "-")} must be >= 1')
    if args.warmup < 0 or args.threads < 0:
        raise ValueError('--warmup and --threads must be >= 0')
    if args.device != 'cpu' and not args.device.startswith('cuda'):
        raise ValueError(f"--device must be 'cpu' or 'cuda[:N]', got {args.device!r}")
    return args


def main(argv=None):
    try:  # bad options: a usage error naming the option, not a traceback
        args = parse_args(argv)
        variants = [parse_variant(s) for s in args.methods]
        labels = [v['label'] for v in variants]
        if len(set(labels)) != len(labels):
            raise ValueError(f'--methods: variant labels must be unique, got {labels}')
    except ValueError as e:
        sys.exit(f'benchmark.py: error: {e}')
    if args.worker:
        from protune_mm.benchmark.measure import run_variant
        result = run_variant(args, parse_variant(args.worker))
        print(RESULT_TAG + json.dumps(result), flush=True)
        return
    runs = run_all(args)
    agg = aggregate(runs)
    table = format_table(agg, labels[0])
    print(f'\n{args.config}  device={args.device} batch={args.batch} '
          f'size={args.size} steps={args.steps} repeats={args.repeats}')
    print(table)
    if args.out:
        info = dict(config=args.config, device=args.device, batch=args.batch,
                    size=int(args.size) if args.size.isdigit() else args.size,
                    warmup=args.warmup, steps=args.steps,
                    infer_steps=args.infer_steps, repeats=args.repeats,
                    threads=args.threads, reference=labels[0],
                    command=' '.join(sys.argv), load_avg=os.getloadavg())
        # Atomic: a crash mid-write leaves the previous file, not half a JSON.
        write_json(dict(info=info, table=table, median=agg, runs=runs), args.out,
                   indent=1)
        if not args.no_timing:
            chart = args.chart or osp.splitext(args.out)[0] + '.png'
            try:
                draw_chart(agg, labels[0], chart,
                           f'{osp.basename(args.config)} ({args.device}, batch '
                           f'{args.batch}, %dx%d)' % parse_size(args.size))
                print(f'wrote {args.out} and {chart}')
            except ImportError:
                print(f'wrote {args.out}; no chart: matplotlib is not installed')


if __name__ == '__main__':
    main()
