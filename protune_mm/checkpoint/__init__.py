"""The one checkpoint policy (``policy.py``), prompt packs (``pack.py``) and safe
loading of mmengine checkpoints with torch >= 2.6 (``safe_load.py``)."""
from . import safe_load  # noqa: F401  (lets torch>=2.6 load mmengine checkpoints)
from .pack import (LoadResult, PromptPack, ensure_pack_hook, export_prompt_pack,
                   is_prompt_pack, load_prompt_pack, make_prompt_pack, pack_nbytes,
                   read_checkpoint, read_prompt_pack, save_prompt_pack)
from .policy import CheckpointError, check_readable, frozen_identity, frozen_keys, strip_frozen

__all__ = ['PromptPack', 'LoadResult', 'load_prompt_pack', 'read_prompt_pack',
           'save_prompt_pack', 'make_prompt_pack', 'export_prompt_pack',
           'is_prompt_pack', 'pack_nbytes', 'ensure_pack_hook', 'read_checkpoint',
           'CheckpointError', 'check_readable', 'frozen_identity', 'frozen_keys', 'strip_frozen']
