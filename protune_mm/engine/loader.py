"""Every mmengine loader reads prompt packs: a ``CheckpointLoader`` scheme for
local ``*.safetensors`` paths (``load_from=PACK``, ``runner.load_checkpoint(PACK)``,
mmdet's ``DetInferencer(weights=PACK)``, mmseg's ``MMSegInferencer``), registered
by :func:`register_pack_scheme` when ``protune_mm`` is imported."""
import os.path as osp

import torch
from mmengine.runner.checkpoint import CheckpointLoader

from ..checkpoint.common import annotate, key_prefix
from ..checkpoint.pack_file import read_safetensors

#: checkpoint['meta'] keys under which the loader passes a pack's metadata and path.
PACK_META_KEY = 'protune_mm_pack'
PACK_PATH_KEY = 'protune_mm_pack_path'

# CheckpointLoader picks the first scheme whose key re.match()es the path
# (longest keys first, '' = local files last), so a regex matching local paths
# ending in .safetensors takes them before the local loader; URLs keep theirs.
PACK_SCHEME = r'(?![A-Za-z][\w+.-]*://).*\.safetensors$'


def load_pack_as_checkpoint(filename: str, map_location=None) -> dict:
    """CheckpointLoader entry for local ``*.safetensors`` paths; reads the file once.

    A prompt pack becomes ``{'state_dict': tensors, 'meta': {PACK_META_KEY:
    metadata, ...}}``, with the pack's metadata also in the state dict's
    ``_metadata`` for the method it was exported from, where the checkpoint
    policy's load pre-hook reads it whichever loader copies the tensors. Any
    other safetensors file is read as a plain state dict (mmengine's local
    loader would fail on it).
    """
    filename = osp.expanduser(filename)
    metadata, state = read_safetensors(filename)
    meta = {}
    if metadata is not None:
        meta = {PACK_META_KEY: metadata, PACK_PATH_KEY: filename}
        if metadata.get('classes') is not None:
            meta['dataset_meta'] = dict(classes=tuple(metadata['classes']))
        annotate(state, key_prefix(metadata['prefix']), pack=metadata, path=filename,
                 frozen_sha256=metadata['frozen_sha256'])
    if isinstance(map_location, (str, torch.device)) and str(map_location) != 'cpu':
        for k, v in state.items():
            state[k] = v.to(map_location)
    return {'state_dict': state, 'meta': meta}


def register_pack_scheme() -> None:
    """Make mmengine's ``CheckpointLoader`` read local ``*.safetensors`` paths
    with :func:`load_pack_as_checkpoint`. ``force``: the scheme is ours alone, and
    a reloaded ``protune_mm`` replaces its own earlier entry."""
    CheckpointLoader.register_scheme(prefixes=PACK_SCHEME, loader=load_pack_as_checkpoint,
                                     force=True)
