"""Reading checkpoint and pack files, with one-line errors naming the file."""
import os.path as osp
import pickle
import zipfile
from contextlib import contextmanager
from typing import Dict

import torch

from .common import CheckpointError


@contextmanager
def open_safetensors(path: str, what: str = 'file'):
    """``safetensors.safe_open`` of ``path`` on the CPU. It checks the header and
    that the file is as long as the header says (so a truncated file fails
    here); its errors become one :class:`CheckpointError` line naming the file."""
    from safetensors import safe_open
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} {path} does not exist')
    try:
        handle = safe_open(path, framework='pt', device='cpu')
    except Exception as e:  # safetensors raises its own SafetensorError
        raise CheckpointError(f'cannot read {path}: truncated or not a safetensors file '
                              f'({_one_line(e)})') from None
    with handle as f:
        yield f


def _one_line(error: Exception) -> str:
    text = ' '.join(str(error).split())
    return f'{type(error).__name__}: {text}' if text else type(error).__name__


def file_metadata(path: str) -> Dict[str, str]:
    """Check that ``path`` can be a readable checkpoint or pack, reading only
    headers (a safetensors header, a zip directory); raise one line naming the
    file and why if not. Returns a safetensors file's metadata ({} for other
    files). URLs and other non-local paths pass (their loaders report)."""
    if '://' in str(path):
        return {}
    path = str(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path} does not exist')
    with open(path, 'rb') as f:
        magic = f.read(4)
    if path.endswith('.safetensors'):
        with open_safetensors(path) as f:
            return f.metadata() or {}
    if magic == b'PK\x03\x04':  # torch's zip format (torch >= 1.6)
        # torch has no public check that reads only the directory.
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError) as e:
            raise CheckpointError(f'cannot read checkpoint {path}: truncated or corrupt '
                                  f'({e})') from None
        if not any(n.endswith('data.pkl') for n in names):
            raise CheckpointError(f'cannot read checkpoint {path}: a zip file but not a '
                                  'torch checkpoint (no data.pkl)')
        return {}
    if len(magic) < 4:
        raise CheckpointError(f'cannot read checkpoint {path}: {len(magic)} bytes, empty '
                              'or truncated')
    try:  # a pack under another file name; else a legacy (pickle) torch file
        with open_safetensors(path) as f:
            return f.metadata() or {}
    except CheckpointError:
        return {}


def check_readable(path: str) -> None:
    """Raise (one line naming the file and why) if ``path`` cannot be a readable
    checkpoint or pack; reads only headers (see :func:`file_metadata`)."""
    file_metadata(path)


def read_checkpoint(path: str) -> dict:
    """An mmengine ``.pth`` checkpoint with ``weights_only=True`` (the allow-list
    for mmengine's objects comes with ``import protune_mm``)."""
    check_readable(path)
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f'cannot load checkpoint {path} with '
                              f'weights_only=True: {e}') from e
    except RuntimeError as e:  # torch's zip reader on corrupt files
        raise CheckpointError(f'cannot read checkpoint {path}: {e}') from e
    if not isinstance(ckpt, dict):
        raise CheckpointError(f'checkpoint {path} holds a {type(ckpt).__name__}, '
                              'expected a dict')
    return ckpt
