"""A finished set's stamp, and writing a set in a scratch directory that is renamed
into place once complete."""
import json
import os
import os.path as osp
import shutil
from typing import Callable, Dict, Optional, Tuple

import numpy as np

STAMP = 'protune_synthetic.json'
# Bump whenever the drawing or the file format changes: older sets then count as stale.
FORMAT_VERSION = 1


def check_params(num_train, num_val, image_size, seed) -> dict:
    for field, value, low in (('num_train', num_train, 1), ('num_val', num_val, 1),
                              ('image_size', image_size, 64), ('seed', seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f'{field} must be an int, got {type(value).__name__}')
        if value < low:
            raise ValueError(f'{field} must be >= {low}, got {value}')
    if image_size > 4096:
        raise ValueError(f'image_size must be <= 4096, got {image_size}')
    return dict(num_train=int(num_train), num_val=int(num_val),
                image_size=int(image_size), seed=int(seed))


def _list_files(root: str) -> Dict[str, int]:
    files = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = osp.join(dirpath, name)
            files[osp.relpath(path, root).replace(os.sep, '/')] = osp.getsize(path)
    return dict(sorted(files.items()))


def read_stamp(root: str) -> Optional[dict]:
    """The stamp of a set made by this script, or None when there is none."""
    try:
        with open(osp.join(root, STAMP)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _is_complete(root: str, stamp: Optional[dict], kind: str, params: dict) -> Tuple[bool, str]:
    """Whether ``root`` holds a complete set of ``kind`` made with ``params``, and if
    not, why (the reason a rewrite gives)."""
    if stamp is None:
        return False, 'new'
    if (stamp.get('kind'), stamp.get('format_version'), stamp.get('params')) != \
            (kind, FORMAT_VERSION, params):
        return False, (f"replaced the set made with "
                       f"{stamp.get('params')}, format {stamp.get('format_version')}")
    for rel, size in stamp.get('files', {}).items():
        path = osp.join(root, rel)
        if not osp.isfile(path) or osp.getsize(path) != size:
            return False, f'replaced an incomplete set: {rel} was missing or changed'
    return True, 'complete'


def generate(root: str, kind: str, params: dict, force: bool,
             write: Callable[[str], None]) -> dict:
    """Write a set with ``write(scratch_dir)`` and move it to ``root`` when complete.

    Only ``root`` itself is replaced, and only when it is empty or carries our stamp:
    a directory with other content (e.g. the real dataset) is never deleted.
    """
    root = osp.abspath(root)
    stamp = read_stamp(root)
    complete, reason = _is_complete(root, stamp, kind, params)
    if complete and not force:
        return dict(root=root, written=False, reason='already complete, same parameters')
    if stamp is not None and stamp.get('kind') != kind:
        raise FileExistsError(
            f"{root} holds a synthetic {stamp.get('kind')} set, not {kind}: pass another path")
    if stamp is None and osp.isdir(root) and os.listdir(root):
        raise FileExistsError(
            f'{root} is not empty and was not made by this script (no {STAMP}); '
            'refusing to overwrite it: remove it or pass another path')
    if osp.exists(root) and not osp.isdir(root):
        raise FileExistsError(f'{root} exists and is not a directory')
    parent, name = osp.split(root)
    os.makedirs(parent, exist_ok=True)
    scratch = osp.join(parent, f'.{name}.protune_partial')
    old = osp.join(parent, f'.{name}.protune_old')
    for leftover in (scratch, old):  # from an interrupted earlier run
        if osp.exists(leftover):
            shutil.rmtree(leftover)
    os.makedirs(scratch)
    write(scratch)
    # The stamp goes last: it lists every file, so a set missing one is incomplete.
    # ``generator`` names the command line, as in stamps written before the move.
    new_stamp = dict(generator='tools/make_synthetic_data.py', kind=kind,
                     format_version=FORMAT_VERSION, params=params, files=_list_files(scratch))
    with open(osp.join(scratch, STAMP), 'w') as f:
        json.dump(new_stamp, f, indent=1)
        f.write('\n')
    if osp.exists(root):
        os.rename(root, old)
    os.rename(scratch, root)
    if osp.exists(old):
        shutil.rmtree(old)
    return dict(root=root, written=True, reason='forced' if complete else reason)
