"""tools/test.py's command line and config set-up, shared with
tools/test_robustness.py (which runs the same test, once per corruption)."""
import argparse

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .common import add_launcher_args, default_work_dir, set_local_rank, task_of


def build_parser(description='Test (and evaluate) a prompt-tuned detector or '
                 'segmentor') -> argparse.ArgumentParser:
    """tools/test.py's command line (mmdet's / mmseg's test.py options)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file or task pack')
    parser.add_argument(
        '--prompts',
        help='a prompts-only pack loaded on top of CHECKPOINT before testing')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--out',
        type=str,
        help='det: dump predictions to this .pkl file; seg: save predicted '
        'segmentation maps into this directory')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images will be saved (relative to '
        'work_dir/timestamp)')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value pairs')
    add_launcher_args(parser)
    return parser


def parse_args(argv=None, parser=None):
    args = (parser or build_parser()).parse_args(argv)
    set_local_rank(args)
    return args


def trigger_visualization_hook(cfg: Config, args, task: str) -> None:
    """Turn on drawing in the stock visualization hook (as mmdet's/mmseg's test.py)."""
    hooks = cfg.default_hooks
    if 'visualization' not in hooks:
        raise ValueError('--show / --show-dir need default_hooks.visualization '
                         "(DetVisualizationHook / SegVisualizationHook) in the config")
    hook = hooks['visualization']
    hook['draw'] = True
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir:
        if task == 'det':
            hook['test_out_dir'] = args.show_dir
        else:
            cfg.visualizer['save_dir'] = args.show_dir


def add_output(cfg: Config, out: str, task: str) -> None:
    if task == 'det':
        if not out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out must be a .pkl/.pickle file for mmdet configs, '
                             f'got {out!r}')
        dump = dict(type='DumpDetResults', out_file_path=out)
        evaluator = cfg.test_evaluator
        cfg.test_evaluator = (list(evaluator) if isinstance(evaluator, (list, tuple))
                              else [evaluator]) + [dump]
    else:
        cfg.test_evaluator['output_dir'] = out
        cfg.test_evaluator['keep_results'] = True


def setup_cfg(args) -> Config:
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    task = task_of(cfg)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = default_work_dir(args.config)
    from protune_mm.checkpoint import check_readable, ensure_pack_hook
    check_readable(args.checkpoint)
    cfg.load_from = args.checkpoint
    # Small checkpoints and packs lack the frozen backbone: the checkpoint policy
    # loads it from its pretrained source (init_cfg) and checks it is the one
    # they were trained with. The hook validates packs as a whole before loading
    # and loads --prompts on top; configs without it get one.
    ensure_pack_hook(cfg, prompts=args.prompts)
    if args.show or args.show_dir:
        trigger_visualization_hook(cfg, args, task)
    if args.out is not None:
        add_output(cfg, args.out, task)
    return cfg


def build_runner(cfg: Config) -> Runner:
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
