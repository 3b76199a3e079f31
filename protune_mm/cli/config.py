"""The one config loader and runner builder of the command lines (train, test,
test_robustness, export_prompts, param_report, quickstart, cuda_check; the
benchmark and the backbone sweep load their configs with ``load_config`` too).

- ``load_config(path, cfg_options=None)``: a config argument as a ``Config``, with
  the ``--cfg-options`` dict merged: a file, ``mmdet::x.py`` / ``mmseg::x.py``
  (mmengine's ``get_config``: the installed package's ``.mim/configs``), or
  ``protune_mm::det/x.py``, a config shipped with protune_mm (``config_file(path)``
  gives its file);
- ``runner_config(args, cfg=None)``: the config a Runner is built from, by mmdet's /
  mmseg's command-line conventions (``args.config``, ``args.cfg_options``,
  ``args.work_dir``, ``args.launcher``);
- ``build_runner(cfg)``, ``build_model(cfg)``;
- ``shipped(*parts)``: a file shipped with protune_mm (``configs/...``, ``tools/...``).
"""
import os.path as osp
from importlib import resources
from typing import Optional

from mmengine.config import Config

#: default_scope of the configs the train / test tools run, and the task each one means.
TASKS = {'mmdet': 'det', 'mmseg': 'seg'}
#: What setup.py ships inside the package, under ``protune_mm/.mim/``.
SHIPPED = ('configs', 'tools')


def shipped(*parts: str) -> str:
    """The path of ``configs/...`` or ``tools/...`` as shipped with protune_mm.

    An installed package has them under its ``.mim/`` folder (setup.py copies them
    there, the OpenMMLab layout); a package imported from a source checkout
    (editable install, ``PYTHONPATH``) reads the checkout's own folders.
    """
    if not parts or parts[0] not in SHIPPED:
        raise ValueError(f'shipped(): the first part must be one of {list(SHIPPED)}, '
                         f'got {parts[:1]}')
    package = str(resources.files('protune_mm'))
    candidates = (osp.join(package, '.mim', *parts), osp.join(osp.dirname(package), *parts))
    for path in candidates:
        if osp.exists(path):
            return path
    raise FileNotFoundError(
        f'{osp.join(*parts)} is not shipped with protune_mm (looked in {candidates[0]} '
        f'and {candidates[1]}); reinstall it with `pip install .` from the repository')


def config_file(path: str) -> str:
    """The file of a config argument: ``protune_mm::det/x.py`` among the configs
    shipped with protune_mm, ``mmdet::x.py`` (any installed OpenMMLab package) in
    that package's ``.mim/configs``, anything else (a path) as given."""
    if '::' not in path:
        return path
    package, rel = path.split('::', 1)
    if package == 'protune_mm':
        return shipped('configs', rel)
    return osp.join(mim_configs(package), rel)


def mim_configs(package: str) -> str:
    """The config folder of an installed OpenMMLab package."""
    # mmengine.hub.get_config would read every metafile of the package per call
    # (a sweep loads over a thousand configs), and install missing packages.
    from mmengine.utils import get_installed_path
    return osp.join(get_installed_path(package), '.mim', 'configs')


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """``path`` (a file, ``mmdet::``/``mmseg::``/``protune_mm::`` path) as a Config,
    with ``cfg_options`` (``--cfg-options``'s dict) merged."""
    cfg = Config.fromfile(config_file(path))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def task_of(cfg: Config) -> str:
    """'det' or 'seg', read from the config's ``default_scope``."""
    scope = cfg.get('default_scope')
    if scope not in TASKS:
        raise ValueError(f"config default_scope must be one of {sorted(TASKS)} (set by "
                         f"the stock mmdet/mmseg base config), got {scope!r}")
    return TASKS[scope]


def default_work_dir(config_path: str) -> str:
    return osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])


def runner_config(args, cfg: Optional[Config] = None) -> Config:
    """The config a Runner is built from, as mmdet's / mmseg's tools make it.

    ``cfg`` (default: ``load_config(args.config)``) gets ``launcher =
    args.launcher``, ``args.cfg_options`` merged and ``work_dir`` by the priority
    ``args.work_dir`` > the config's own > ``./work_dirs/<config name>``. A config
    that is neither mmdet's nor mmseg's (``default_scope``) is a ValueError.
    """
    cfg = load_config(args.config) if cfg is None else cfg
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    task_of(cfg)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = default_work_dir(args.config)
    return cfg


def build_runner(cfg: Config):
    """mmengine's Runner, or the config's ``runner_type`` (as mmdet's train.py)."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)


def build_model(cfg: Config):
    """The model of ``cfg`` in its default scope, weights not initialised (nothing is
    read or downloaded)."""
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    return MODELS.build(cfg.model)
