"""Train a prompt-tuned detector (mmdet config) or segmentor (mmseg config).

Same command line as mmdet's / mmseg's ``tools/train.py``::

    python tools/train.py configs/det/mask_rcnn_protune_r50.py
    python -m protune_mm.cli.train protune_mm::det/mask_rcnn_protune_r50.py  # installed
    python tools/train.py CONFIG --work-dir DIR --resume            # latest in DIR
    python tools/train.py CONFIG --resume work_dirs/x/iter_8000.pth  # that one
    bash tools/dist_train.sh CONFIG 8                                # 8 GPUs

Differences: missing dataset paths are reported before anything is built;
``--launcher pytorch`` also works without CUDA (use ``--cfg-options
env_cfg.dist_cfg.backend=gloo``); ``--amp`` refuses CPU-only machines.
"""
import argparse
import os.path as osp

from mmengine.config import Config

from .common import (add_cfg_options, add_launcher_args, check_run, enable_amp, exit_on,
                     set_local_rank)
from .config import build_runner, runner_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train a prompt-tuned detector or segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint, or without a value from the latest '
        'checkpoint in the work dir')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training (needs a GPU)')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the lr by the actual / the config\'s base batch size')
    add_cfg_options(parser)
    add_launcher_args(parser)
    args = parser.parse_args(argv)
    set_local_rank(args)
    return args


def setup_cfg(args) -> Config:
    """The config the runner is built from, after the command-line overrides."""
    return apply_args(None, args)


def apply_args(cfg, args) -> Config:
    """Apply the command line to ``cfg`` (None: ``args.config`` loaded)."""
    cfg = runner_config(args, cfg)
    if args.amp:
        enable_amp(cfg)

    if args.auto_scale_lr:
        scale = cfg.get('auto_scale_lr')
        if not scale or 'base_batch_size' not in scale:
            raise ValueError('--auto-scale-lr needs auto_scale_lr=dict(enable=..., '
                             'base_batch_size=N) in the config')
        cfg.auto_scale_lr.enable = True

    # --resume: the latest checkpoint of the work dir ('auto') or the given one.
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise FileNotFoundError(f'--resume: checkpoint {args.resume} does not exist')
        cfg.resume = True
        cfg.load_from = args.resume
    if cfg.get('load_from'):
        from protune_mm.checkpoint import check_readable
        check_readable(cfg.load_from)
    return cfg


def main(argv=None):
    args = parse_args(argv)
    with exit_on(FileNotFoundError, ValueError):
        cfg = check_run(setup_cfg(args), splits=('train', 'val'))
    from protune_mm.checkpoint import CheckpointError
    with exit_on(CheckpointError):
        build_runner(cfg).train()


if __name__ == '__main__':
    main()
