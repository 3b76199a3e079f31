"""Which configs a sweep reads, and the weight-free backbone config of each.

A CONFIG is a file or ``pkg::path/to/config.py`` inside an installed OpenMMLab
package; without any, the sweep takes every stock config of ``PACKAGES`` (their
``.mim/configs``, ``_base_`` folders left out).
"""
import glob
import os.path as osp
import warnings
from typing import List, Optional, Tuple

from protune_mm.cli.config import load_config, mim_configs

#: packages whose stock configs make the default sweep.
PACKAGES = ('mmdet', 'mmseg')
#: config keys that load weights; removed at any depth of the backbone config.
WEIGHT_KEYS = ('init_cfg', 'pretrained')
# Config statuses (one per config; 'checked' configs have method results).
CHECKED, NOT_BUILT, NO_BACKBONE, NOT_LOADED = ('checked', 'not built', 'no backbone',
                                               'not loaded')


def stock_configs(packages=PACKAGES) -> List[str]:
    """``pkg::path`` of every stock config of ``packages`` (``_base_`` left out)."""
    names = []
    for pkg in packages:
        root = mim_configs(pkg)
        for path in sorted(glob.glob(osp.join(root, '**', '*.py'), recursive=True)):
            rel = osp.relpath(path, root)
            if '_base_' not in rel.split(osp.sep):
                names.append(f'{pkg}::{rel}')
    return names


def _plain(value):
    """Config values as plain containers (ConfigDict -> dict); tuples stay tuples,
    since backbones assert on them (CGNet, MobileNetV3)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def sync_bn_to_bn(cfg) -> None:
    """SyncBN -> BN in place, at any depth of a config: one process has no process
    group, and BN is the same computation in the frozen eval mode.

    A config rewrite rather than ``mmengine.model.revert_sync_batchnorm`` on the
    built model: the methods fold conv+BN and attach to modules as they are
    built, and a norm swapped in afterwards is no longer folded."""
    if isinstance(cfg, dict):
        if cfg.get('type') == 'SyncBN':
            cfg['type'] = 'BN'
        for v in cfg.values():
            sync_bn_to_bn(v)
    elif isinstance(cfg, (list, tuple)):
        for v in cfg:
            sync_bn_to_bn(v)


def _without_weights(cfg):
    if isinstance(cfg, dict):
        return {k: _without_weights(v) for k, v in cfg.items() if k not in WEIGHT_KEYS}
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(_without_weights(v) for v in cfg)
    return cfg


def strip_weights(cfg):
    """A copy of a backbone config without what loads weights (``init_cfg``,
    ``pretrained`` at any depth) and with SyncBN as BN."""
    cfg = _without_weights(cfg)
    sync_bn_to_bn(cfg)
    return cfg


def reason(e: BaseException, limit: int = 300) -> str:
    """One line for an exception: its type and first line, at most ``limit``
    characters."""
    lines = str(e).strip().splitlines()
    text = f'{type(e).__name__}: {lines[0] if lines else ""}'.rstrip(': ')
    return text if len(text) <= limit else text[:limit - 3] + '...'


def read_backbone(name: str) -> Tuple[str, Optional[str], Optional[dict]]:
    """(status, reason or scope, stripped backbone config) of one config."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            cfg = load_config(name)
    except Exception as e:  # a stock config may need a package or project not here
        return NOT_LOADED, reason(e), None
    model = cfg.get('model')
    backbone = model.get('backbone') if isinstance(model, dict) else None
    if not isinstance(backbone, dict) or 'type' not in backbone:
        return NO_BACKBONE, ('no model' if not isinstance(model, dict) else
                             f"no model.backbone (model type {model.get('type')!r})"), None
    scope = cfg.get('default_scope') or (name.split('::')[0] if '::' in name else None)
    return CHECKED, scope, strip_weights(_plain(backbone))


def backbone_type(scope: Optional[str], cfg: dict) -> str:
    """The registry name of a backbone with its scope: 'mmdet.ResNet',
    'mmpretrain.ConvNeXt' (a scope written in the type wins)."""
    t = cfg['type']
    if not isinstance(t, str):
        return getattr(t, '__qualname__', repr(t))
    return t if '.' in t or not scope else f'{scope}.{t}'
