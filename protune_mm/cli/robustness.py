"""Robustness of a detector or segmentor to corrupted inputs (ImageNet-C / COCO-C
corruptions, Michaelis et al. 2019): the stock metrics per corruption and
severity, clean performance, mPC and rPC, as JSON, a table and a PNG chart.

    python tools/test_robustness.py CONFIG CKPT_OR_PACK [--corruptions benchmark]
        [--severities 1 2 3 4 5] [--seed 0] [--results FILE] [--resume]
        [tools/test.py's options]

tools/test.py's command line and set-up, plus the corruptions, severities, seed
and results file of the run; the logic is ``protune_mm/robustness/``.
"""
import os.path as osp

from .common import check_run, exit_on
from .config import build_runner
from .test import build_parser, parse_args as parse_test_args, setup_cfg


def parse_args(argv=None):
    parser = build_parser('Evaluate a detector or segmentor on corrupted test images '
                          '(mPC, rPC)')
    parser.add_argument('--corruptions', nargs='*', default=['benchmark'],
                        help='a set (benchmark = the 15 of ImageNet-C / COCO-C, noise, '
                        'blur, weather, digital, all = with the 4 extra ones) or '
                        'corruption names; none: clean only')
    parser.add_argument('--severities', nargs='+', default=['1', '2', '3', '4', '5'],
                        help='severities from 1-5 (0 = clean, always evaluated)')
    parser.add_argument('--seed', type=int, default=0,
                        help='the seed each image\'s corruption seed derives from')
    parser.add_argument('--results', help='JSON results (written after every '
                        'evaluation; the chart goes beside it as .png); default '
                        'WORK_DIR/robustness.json')
    parser.add_argument('--resume', action='store_true',
                        help='keep the evaluations already in --results (same config, '
                        'checkpoint, seed, options) and run the rest')
    args = parse_test_args(argv, parser)
    from protune_mm.robustness import check_severities, resolve_corruptions
    args.corruptions = resolve_corruptions(args.corruptions)
    args.severities = check_severities(args.severities)
    for option in ('out', 'show', 'show_dir'):
        if getattr(args, option):
            raise ValueError(f"--{option.replace('_', '-')} is tools/test.py's; "
                             'test_robustness.py runs one test per corruption and '
                             'severity and writes --results instead')
    return args


def main(argv=None) -> dict:
    from protune_mm.checkpoint import CheckpointError
    from protune_mm.robustness.evaluate import run_robustness
    with exit_on(FileNotFoundError, ValueError):
        args = parse_args(argv)
        cfg = check_run(setup_cfg(args), splits=('test', ))
    identity = dict(config=osp.abspath(args.config),
                    checkpoint=osp.abspath(args.checkpoint),
                    prompts=osp.abspath(args.prompts) if args.prompts else None,
                    seed=args.seed,
                    # experiment_name only names the logs.
                    cfg_options=sorted(f'{k}={v}' for k, v in
                                       (args.cfg_options or {}).items()
                                       if k != 'experiment_name'))
    results = args.results or osp.join(cfg.work_dir, 'robustness.json')
    with exit_on(CheckpointError, ValueError):
        return run_robustness(cfg, identity, args.corruptions, args.severities, results,
                              resume=args.resume, build_runner=build_runner)


if __name__ == '__main__':
    main()
