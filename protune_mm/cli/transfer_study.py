"""Do prompts learn? The transfer study's command line; the study is
``protune_mm.study.transfer``, results: README.md, Benchmarks.

    python tools/transfer_study.py [--backbones resnet vit] \\
        [--methods frozen protune vpt full scratch] [--method-lr full=0.001] ...
"""
import argparse
import math
import sys
from collections import OrderedDict

from protune_mm.study.transfer import run
from protune_mm.study.variants import (BACKBONES, DEFAULT_METHODS, METHODS, STUDY_OPTIONS,
                                       check_variant)


def _positive(option):
    def convert(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'{option} must be a positive integer, '
                                             f'got {text!r}')
        if value < 1:
            raise argparse.ArgumentTypeError(f'{option} must be a positive integer, '
                                             f'got {value}')
        return value
    return convert


class _Parser(argparse.ArgumentParser):
    """Errors raise ValueError (naming the option) instead of exiting, so
    parse_args() can be called from Python; main() turns them into a usage error."""

    def error(self, message):
        raise ValueError(message)


def parse_args(argv=None):
    parser = _Parser(description='Transfer study: head-only vs Pro-tuning vs VPT vs '
                     'full fine-tuning from a backbone pre-trained on synthetic task A '
                     'to synthetic task B (CPU).')
    parser.add_argument('--backbones', nargs='+', default=['resnet', 'vit'],
                        help=f'backbones to study, from {list(BACKBONES)}')
    parser.add_argument('--methods', nargs='+', default=list(DEFAULT_METHODS),
                        help=f'methods, from {list(METHODS)}; frozen (head-only) is '
                        'the reference of the gains. A variant: NAME:key=value,... '
                        'with wrapper arguments (protune:hidden_ratio=0.25,'
                        'place=output) or ' + '; '.join(
                            f'{k}: {v}' for k, v in STUDY_OPTIONS.items()))
    parser.add_argument('--iters-pretrain', type=_positive('--iters-pretrain'),
                        default=1500, help="iterations of task A pre-training")
    parser.add_argument('--iters', type=_positive('--iters'), default=500,
                        help='iterations of every task B adaptation')
    parser.add_argument('--batch', type=_positive('--batch'), default=16)
    parser.add_argument('--size', type=_positive('--size'), default=64,
                        help='image side in pixels, a multiple of 32')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2],
                        help='adaptation seeds (head/prompt init, data order)')
    parser.add_argument('--lr', type=float, default=1e-2,
                        help='AdamW learning rate of task B, the same for every method')
    parser.add_argument('--method-lr', nargs='+', default=[], metavar='METHOD=LR',
                        help='learning rate of task B for some methods instead of --lr, '
                        'e.g. full=1e-3')
    parser.add_argument('--lr-pretrain', type=float, default=1e-2,
                        help='AdamW learning rate of task A pre-training')
    parser.add_argument('--num-train', type=_positive('--num-train'), default=1000,
                        help='training images per task')
    parser.add_argument('--num-train-b', type=_positive('--num-train-b'), default=None,
                        help='task B training images (its first N: smaller sets are '
                        'nested in larger ones), for data-scale runs; default '
                        '--num-train')
    parser.add_argument('--num-val', type=_positive('--num-val'), default=200,
                        help='val images per task')
    parser.add_argument('--eval-train', action='store_true',
                        help='also evaluate every adapted model on the task B images it '
                        'trained on (the first --num-val of them): train mIoU, for '
                        'telling overfitting from underfitting')
    parser.add_argument('--robustness', action='store_true',
                        help='also evaluate every adapted model on corrupted task B '
                        'val images (tools/test_robustness.py\'s corruptions): clean '
                        'mIoU, mPC, rPC')
    parser.add_argument('--corruptions', nargs='*', default=['benchmark'],
                        help='with --robustness: a set (benchmark, noise, blur, '
                        'weather, digital, all) or corruption names')
    parser.add_argument('--severities', nargs='+', default=['1', '2', '3', '4', '5'],
                        help='with --robustness: severities, from 1-5')
    parser.add_argument('--corruption-seed', type=int, default=0,
                        help='with --robustness: the seed the per-image seeds derive from')
    parser.add_argument('--threads', type=_positive('--threads'), default=2,
                        help='torch threads')
    parser.add_argument('--log-interval', type=_positive('--log-interval'), default=50)
    parser.add_argument('--work-dir', default='work_dirs/transfer_study',
                        help='checkpoints and logs')
    parser.add_argument('--out', default='benchmarks/transfer_study.json',
                        help='JSON results (written atomically)')
    args = parser.parse_args(argv)
    bad = [v for v in args.backbones if v not in BACKBONES]
    if bad:
        raise ValueError(f'--backbones: unknown value(s) {bad}; allowed: {list(BACKBONES)}')
    args.methods = [check_variant(m) for m in args.methods]
    for option, values in (('--backbones', args.backbones), ('--methods', args.methods)):
        if len(set(values)) != len(values):
            raise ValueError(f'{option}: repeated value(s) in {values}')
    if len(set(args.seeds)) != len(args.seeds):
        raise ValueError(f'--seeds: repeated seed(s) in {args.seeds}')
    if args.size % 32 or args.size < 32:
        raise ValueError(f'--size must be a multiple of 32 (the backbones downsample '
                         f'by 32), got {args.size}')
    from protune_mm.robustness import check_severities, resolve_corruptions
    args.corruptions = resolve_corruptions(args.corruptions)
    args.severities = [v for v in check_severities(args.severities) if v > 0]
    if args.robustness and not (args.corruptions and args.severities):
        raise ValueError('--robustness needs at least one corruption and one '
                         'severity from 1-5')
    args.method_lr = _method_lrs(args.method_lr, args.methods)
    for option, value in (('--lr', args.lr), ('--lr-pretrain', args.lr_pretrain),
                          *((f'--method-lr {m}', v) for m, v in args.method_lr.items())):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f'{option} must be a positive number, got {value}')
    return args


def _method_lrs(items, methods) -> dict:
    """``['full=1e-3', ...]`` -> ``{'full': 0.001}``; names the bad item."""
    out = OrderedDict()
    for item in items:
        method, sep, value = item.rpartition('=')
        if not sep or method not in methods:
            raise ValueError(f'--method-lr: expected METHOD=LR with METHOD one of the '
                             f'studied methods {list(methods)}, got {item!r}')
        if method in out:
            raise ValueError(f'--method-lr: {method} given twice')
        try:
            out[method] = float(value)
        except ValueError:
            raise ValueError(f'--method-lr {method}: {value!r} is not a number')
    return out


def main(argv=None) -> dict:
    try:
        args = parse_args(argv)
    except ValueError as e:  # a usage error naming the option, not a traceback
        sys.exit(f'transfer_study.py: error: {e}')
    return run(args)
