"""tools/test_robustness.py: tools/test.py's command line and set-up, plus the
corruptions, severities, seed and results file of the robustness run."""
import os.path as osp
import sys

from .common import check_data, setup_cpu_distributed
from .test import build_parser, build_runner, parse_args as parse_test_args, setup_cfg


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
    try:
        args = parse_args(argv)
        cfg = setup_cfg(args)
        check_data(cfg, splits=('test', ))
        setup_cpu_distributed(cfg)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'error: {e}')
    identity = dict(config=osp.abspath(args.config),
                    checkpoint=osp.abspath(args.checkpoint),
                    prompts=osp.abspath(args.prompts) if args.prompts else None,
                    seed=args.seed,
                    # experiment_name only names the logs.
                    cfg_options=sorted(f'{k}={v}' for k, v in
                                       (args.cfg_options or {}).items()
                                       if k != 'experiment_name'))
    results = args.results or osp.join(cfg.work_dir, 'robustness.json')
    try:
        return run_robustness(cfg, identity, args.corruptions, args.severities, results,
                              resume=args.resume, build_runner=build_runner)
    except (CheckpointError, ValueError) as e:
        sys.exit(f'error: {e}')
