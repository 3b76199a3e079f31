"""Check every method on the backbones of stock (or given) configs.

    python tools/check_backbones.py [CONFIG ...] [--methods frozen protune vpt]
        [--size 64] [--max-size 512] [--timeout 300] [--threads 1] [--jobs N]
        [--out FILE]

Without CONFIG: every stock config of the installed mmdet and mmseg (their
``.mim/configs``, ``_base_`` folders left out). A CONFIG is a file or
``mmdet::path/to/config.py``. For each config ``model.backbone`` is taken (configs
that do not load or have none are counted apart, with the reason), stripped of
what would load weights (``init_cfg``, ``pretrained``, at any depth; SyncBN becomes
BN, the same computation in the frozen eval mode on one process), and each
*unique* backbone (that stripped config in its registry scope) is checked once:

- the bare backbone is built and run at ``--size``; when it does not run there
  (too small for its downsampling, window or crop), at twice the size, up to
  ``--max-size``; the size that ran is used for every method and recorded;
- each registered method (``protune_mm.Frozen``, ``ProTune`` and ``VPT`` with
  their defaults) goes through ``protune_mm.check.check_method``: identity at
  init, gradients on every prompt, frozen tensors unchanged after optimizer steps.

Unique backbones are checked by ``--jobs`` worker processes side by side (one
torch thread each by default). The result applies to every config using that
backbone. Printed: a progress line
per unique backbone, a table by backbone type (configs, share passing per
method), every failing config with the reason; written: the JSON (``--out``).
Exit code 1 if a checked backbone failed a method, else 0.

The pieces: ``protune_mm/sweep/`` (configs, one backbone, workers, summary).
"""
import argparse
import os
import sys

from protune_mm.sweep.configs import PACKAGES


def parse_args(argv=None):
    from protune_mm.sweep.methods import method_types
    methods = list(method_types())
    parser = argparse.ArgumentParser(
        description='Check each registered method (Frozen, ProTune, VPT, LoRA) on the '
        'backbones of stock or given configs (identity at init, gradients, frozen '
        'tensors unchanged)')
    parser.add_argument('configs', nargs='*', metavar='CONFIG',
                        help='config files or pkg::path; default: every stock config '
                        f'of the installed {" and ".join(PACKAGES)}')
    parser.add_argument('--methods', nargs='+', default=methods, choices=methods,
                        help='methods to check')
    parser.add_argument('--size', type=int, default=64,
                        help='side of the square check input (batch 1)')
    parser.add_argument('--max-size', type=int, default=512,
                        help='largest side tried (doubling from --size) for a backbone '
                        'that does not run at --size')
    parser.add_argument('--timeout', type=float, default=300,
                        help='CPU seconds per unique backbone (all methods; CPU time, '
                        'so a busy machine does not time checks out); 0: none')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch CPU threads; 1 by default: on a shared 2-core '
                        'machine two threads took 6x the CPU time of one (measured, '
                        'threads spinning while the other core was busy)')
    parser.add_argument('--jobs', type=int, default=min(4, os.cpu_count() or 1),
                        help='worker processes checking backbones side by side '
                        '(default: the CPU count, at most 4)')
    parser.add_argument('--out', default='work_dirs/check_backbones.json',
                        help='JSON results (written atomically)')
    args = parser.parse_args(argv)
    if args.size < 1 or args.max_size < args.size:
        parser.error(f'--size must be >= 1 and --max-size >= --size, got --size '
                     f'{args.size} --max-size {args.max_size}')
    if args.jobs < 1:
        parser.error(f'--jobs must be >= 1, got {args.jobs}')
    if args.threads < 1:
        parser.error(f'--threads must be >= 1, got {args.threads}')
    if args.timeout < 0:
        parser.error(f'--timeout must be >= 0 (0: none), got {args.timeout}')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from protune_mm.fileio import write_json
    from protune_mm.sweep.configs import stock_configs
    from protune_mm.sweep.summary import failing_lines, report, versions
    from protune_mm.sweep.workers import sweep
    names = args.configs or stock_configs()
    result = sweep(names, args.methods, args.size, args.max_size, args.timeout,
                   args.threads, jobs=args.jobs)
    result['threads'] = args.threads
    result['command'] = ' '.join(['tools/check_backbones.py'] + list(
        argv if argv is not None else sys.argv[1:]))
    result['versions'] = versions()
    write_json(result, args.out)
    print('\n'.join(report(result, args.out)))
    return 1 if failing_lines(result) else 0
