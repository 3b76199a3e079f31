"""Test (and evaluate) a prompt-tuned detector or segmentor.

Same command line as mmdet's / mmseg's ``tools/test.py``; CHECKPOINT may be

- a full mmengine checkpoint (``PromptCheckpointHook(save_frozen=True)`` or any
  stock one),
- a small checkpoint of this project (frozen backbone dropped): the frozen
  backbone is loaded from its pretrained source (the inner backbone's
  ``init_cfg``) before the checkpoint, and must be the one it was trained with,
- a task pack (``.safetensors``, see ``tools/export_prompts.py``), checked
  against the model before it is loaded.

``--prompts PACK`` loads a prompts-only pack on top of CHECKPOINT (the prompts of
one task over the neck and heads of CHECKPOINT); a prompts-only pack given as
CHECKPOINT is refused, since the neck and heads would stay at their random init.
A checkpoint or pack that cannot be read or does not fit is one line naming it.

``--out``: mmdet configs dump the raw predictions to a ``.pkl`` file (as mmdet's
test.py); mmseg configs save the predicted maps as PNGs into that directory (as
mmseg's test.py). The command line and set-up are shared with
tools/test_robustness.py, which runs the same test once per corruption.
"""
import argparse

from mmengine.config import Config

from .common import add_cfg_options, add_launcher_args, check_run, exit_on, set_local_rank
from .config import build_runner, runner_config, task_of


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
    add_cfg_options(parser)
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
    cfg = runner_config(args)
    task = task_of(cfg)
    from protune_mm.checkpoint import check_readable
    from protune_mm.engine import ensure_pack_hook
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


def main(argv=None):
    args = parse_args(argv)
    with exit_on(FileNotFoundError, ValueError):
        cfg = check_run(setup_cfg(args), splits=('test', ))
    from protune_mm.checkpoint import CheckpointError
    runner = build_runner(cfg)
    with exit_on(CheckpointError):
        return runner.test()


if __name__ == '__main__':
    main()
