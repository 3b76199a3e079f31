"""Command-line pieces shared by the train, test and robustness tools (det and seg
configs alike): mmdet's / mmseg's options, the data check, CPU-only distributed
runs and ``--amp``. Loading configs and building runners: ``protune_mm.cli.config``."""
import logging
import os
import os.path as osp
import sys
from contextlib import contextmanager
from typing import List

import torch
from mmengine.config import Config, DictAction

DATA_DOC = "README.md, section '## Data preparation'"


def add_cfg_options(parser) -> None:
    """``--cfg-options``, as mmdet's / mmseg's tools take it."""
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value pairs, e.g. '
        'train_dataloader.batch_size=4 or key="[a,b]" for lists')


@contextmanager
def exit_on(*errors):
    """End the program with one line ``error: ...`` on ``errors`` (set-up problems:
    missing data, bad flags, a checkpoint that does not fit), not a traceback."""
    try:
        yield
    except errors as e:
        sys.exit(f'error: {e}')


def add_launcher_args(parser) -> None:
    """``--launcher`` and ``--local-rank``, as mmdet's / mmseg's tools take them."""
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch passes --local-rank, older versions --local_rank.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def set_local_rank(args) -> None:
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)


# ----------------------------------------------------------------------------------
# Missing data: fail before the runner is built, with the path and where to read up.

def _dataset_paths(dataset: dict) -> List[str]:
    """Local paths a dataset config reads, joined like mmengine's BaseDataset does
    (``ann_file`` and every ``data_prefix`` value are relative to ``data_root``)."""
    if 'datasets' in dataset:  # ConcatDataset
        return [p for d in dataset['datasets'] for p in _dataset_paths(d)]
    if 'dataset' in dataset:  # RepeatDataset, ClassBalancedDataset, MultiImageMix...
        return _dataset_paths(dataset['dataset'])
    root = dataset.get('data_root') or ''
    paths = []
    if root:
        paths.append(root)
    names = [dataset.get('ann_file') or '']
    names += [v for v in (dataset.get('data_prefix') or {}).values()
              if isinstance(v, str)]
    for name in names:
        if not name:
            continue
        paths.append(name if osp.isabs(name) or not root else osp.join(root, name))
    # Remote storage (s3://, http://, ...) is the file backend's business.
    return [p for p in paths if '://' not in p]


def check_data(cfg: Config, splits=('train', 'val', 'test')) -> None:
    """Raise FileNotFoundError naming the first missing dataset path of ``splits``."""
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if not loader or cfg.get(f'{split}_cfg', {}) is None:
            continue  # this split is not run
        paths = [(f'{split}_dataloader.dataset', p)
                 for p in _dataset_paths(loader['dataset'])]
        # mmdet's CocoMetric reads the annotation file itself.
        evaluators = cfg.get(f'{split}_evaluator') or []
        for evaluator in evaluators if isinstance(evaluators, list) else [evaluators]:
            ann_file = evaluator.get('ann_file')
            if ann_file and '://' not in ann_file:
                paths.append((f'{split}_evaluator.ann_file', ann_file))
        for field, path in paths:
            if not osp.exists(path):
                option = (f'{split}_evaluator.ann_file=PATH' if 'evaluator' in field
                          else f'{split}_dataloader.dataset.data_root=PATH')
                raise FileNotFoundError(
                    f'{field}: {path} does not exist (data_root='
                    f"{loader['dataset'].get('data_root')!r}, cwd={os.getcwd()}). "
                    f'Prepare the dataset as described in {DATA_DOC}, or point the '
                    f'config at it with --cfg-options {option}')


def check_run(cfg: Config, splits) -> Config:
    """The data check of ``splits``, then the CPU-only distributed set-up: what the
    train and test tools do before they build the runner."""
    check_data(cfg, splits=splits)
    setup_cpu_distributed(cfg)
    return cfg


# ----------------------------------------------------------------------------------
# Distributed runs without CUDA (gloo on CPU).

def setup_cpu_distributed(cfg: Config) -> None:
    """Make ``--launcher pytorch/slurm/mpi`` work on a machine without CUDA.

    mmengine's ``init_dist`` calls ``torch.cuda.set_device`` and its runner wraps
    the model in DDP with ``device_ids=[LOCAL_RANK]``; both need a GPU. Without
    CUDA we start the process group ourselves (the runner then skips its own
    ``init_dist``) and let DDP work on CPU tensors (``device_ids=None``).
    """
    if cfg.launcher == 'none' or torch.cuda.is_available():
        return
    import torch.distributed as dist
    from mmengine.dist import init_dist
    backend = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('backend', 'nccl')
    if backend not in ('gloo', 'mpi'):
        raise ValueError(
            f'env_cfg.dist_cfg.backend={backend!r} needs CUDA, which is not available; '
            "on CPU use --cfg-options env_cfg.dist_cfg.backend=gloo (allowed on CPU: "
            "'gloo', 'mpi')")
    if not dist.is_initialized():
        if cfg.launcher == 'pytorch':
            # What init_dist does for torchrun, minus torch.cuda.set_device.
            dist.init_process_group(backend=backend,
                                    rank=int(os.environ['RANK']),
                                    world_size=int(os.environ['WORLD_SIZE']))
        else:
            init_dist(cfg.launcher, backend=backend)
    # The runner's own default wrapper, with device_ids=None (CPU module).
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper.setdefault('device_ids', None)
    cfg.model_wrapper_cfg = wrapper


# ----------------------------------------------------------------------------------
# --amp

def enable_amp(cfg: Config) -> None:
    """Switch the config to mixed precision (fp16 with dynamic loss scaling).

    Only on an accelerator: mmengine's AmpOptimWrapper refuses CPU-only machines,
    and CPU autocast (bf16) is rarely faster than fp32 there, so we refuse too.
    """
    from mmengine.device import get_device
    from mmengine.logging import print_log
    device = get_device()
    if device == 'cpu':
        raise ValueError('--amp needs a CUDA (or NPU/MLU/MUSA) device; none is '
                         'available, so train in fp32 without --amp')
    optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if optim_wrapper == 'AmpOptimWrapper':
        print_log('AMP training is already enabled in your config.', logger='current',
                  level=logging.WARNING)
        return
    if optim_wrapper != 'OptimWrapper':
        raise ValueError('--amp needs optim_wrapper.type=OptimWrapper (it becomes '
                         f'AmpOptimWrapper), got {optim_wrapper!r}')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'
