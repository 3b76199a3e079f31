"""The prompt pack on disk and in memory.

A pack is a safetensors file: tensors keyed as in the model that exported it,
and metadata (each value JSON-encoded) saying what it fits: ``format``,
``format_version``, ``kind`` (``prompts`` or ``task``), the method record
(``method``, ``method_config``), ``backbone_type``, ``backbone_class``,
``backbone_config``, the frozen identity ``frozen_sha256``, the method's
``prefix`` in the model, ``classes`` and ``protune_mm_version``.

A file is opened once per read: its header (metadata) is validated, then its
tensors are read from the same handle.
"""
import json
import os
import os.path as osp
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import torch

from ..fileio import atomic_write
from .common import CheckpointError
from .files import open_safetensors

PACK_FORMAT = 'protune_mm.prompt_pack'
PACK_FORMAT_VERSION = 1
PACK_KINDS = ('prompts', 'task')
REQUIRED = ('kind', 'method', 'method_config', 'backbone_type', 'backbone_config',
            'frozen_sha256', 'prefix')


@dataclass
class PromptPack:
    """A pack in memory: tensors (keys as in the exporting model) + metadata.

    Keep several in memory to switch a model between tasks without re-reading
    files: ``load_prompt_pack(model, pack)``.
    """
    tensors: Dict[str, torch.Tensor]
    metadata: Dict[str, object]
    path: Optional[str] = field(default=None)

    @property
    def kind(self) -> str:
        return self.metadata['kind']

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values())

    def __repr__(self):
        return (f'PromptPack(kind={self.kind!r}, method={self.metadata["method"]!r}, '
                f'tensors={len(self.tensors)}, bytes={self.nbytes}, path={self.path!r})')


def check_kind(kind: str) -> None:
    if kind not in PACK_KINDS:
        raise CheckpointError(f'pack kind must be one of {PACK_KINDS}, got {kind!r}')


def pack_metadata(raw: Dict[str, str], path: str) -> Optional[dict]:
    """The decoded, validated metadata of a pack from its safetensors header
    metadata ``raw``; None if ``raw`` is not a pack's. Raises naming ``path`` if
    it is a pack's but malformed."""
    if raw.get('format') != json.dumps(PACK_FORMAT):
        return None
    try:
        metadata = {k: json.loads(v) for k, v in raw.items()}
    except ValueError as e:
        raise CheckpointError(f'prompt pack {path} has corrupt metadata: {e}') from None
    if metadata.get('format_version') != PACK_FORMAT_VERSION:
        raise CheckpointError(f'prompt pack {path} has format_version '
                              f"{metadata.get('format_version')!r}; this protune_mm "
                              f'reads {PACK_FORMAT_VERSION}')
    missing = [k for k in REQUIRED if k not in metadata]
    if missing:
        raise CheckpointError(f'prompt pack {path} lacks metadata {missing}')
    if metadata['kind'] not in PACK_KINDS:
        raise CheckpointError(f"prompt pack {path} has kind {metadata['kind']!r}, "
                              f'allowed {PACK_KINDS}')
    return metadata


def _not_a_pack(path: str, raw: Dict[str, str]) -> CheckpointError:
    return CheckpointError(f'{path} is a safetensors file but not a protune_mm prompt '
                           f"pack (metadata 'format' is {raw.get('format')!r}, "
                           f'expected {json.dumps(PACK_FORMAT)!r})')


def read_pack_metadata(path: str) -> dict:
    """The validated metadata of the pack ``path``, from its header alone."""
    path = str(path)
    with open_safetensors(path, 'prompt pack') as f:
        raw = f.metadata() or {}
    metadata = pack_metadata(raw, path)
    if metadata is None:
        raise _not_a_pack(path, raw)
    return metadata


def is_prompt_pack(path) -> bool:
    """True if ``path`` is a readable safetensors file whose header says it is a
    prompt pack (reads only the header)."""
    if not isinstance(path, (str, os.PathLike)) or not osp.isfile(path):
        return False
    try:
        with open_safetensors(str(path)) as f:
            return (f.metadata() or {}).get('format') == json.dumps(PACK_FORMAT)
    except CheckpointError:
        return False


def read_safetensors(path: str, must_be_pack: bool = False
                     ) -> Tuple[Optional[dict], 'OrderedDict[str, torch.Tensor]']:
    """(validated pack metadata, or None for another safetensors file; its
    tensors on the CPU), in one open of the file. ``safetensors.torch.load_file``
    reads the same tensors but not the metadata."""
    path = str(path)
    with open_safetensors(path, 'prompt pack' if must_be_pack else 'checkpoint') as f:
        raw = f.metadata() or {}
        metadata = pack_metadata(raw, path)
        if metadata is None and must_be_pack:
            raise _not_a_pack(path, raw)
        tensors = OrderedDict((k, f.get_tensor(k)) for k in f.keys())
    return metadata, tensors


def read_prompt_pack(path: str) -> PromptPack:
    """Read a pack file. Raises naming the file if it is missing, truncated,
    corrupt or not a prompt pack."""
    metadata, tensors = read_safetensors(path, must_be_pack=True)
    return PromptPack(tensors, metadata, str(path))


def save_prompt_pack(pack: PromptPack, path: str) -> str:
    """Write ``pack`` to ``path`` atomically: a temp file in the same directory,
    fsync, then ``os.replace``; an interrupted write leaves no file under
    ``path`` (and no temp file)."""
    from safetensors.torch import save_file
    path = osp.abspath(path)
    # safetensors refuses shared or non-contiguous storage; packs are small.
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in pack.tensors.items()}
    metadata = {k: json.dumps(v) for k, v in pack.metadata.items()}
    with atomic_write(path, fsync=True) as tmp:
        save_file(tensors, tmp, metadata=metadata)
    pack.path = path
    return path
