"""What a checkpoint or prompt pack of a prompt-tuned model holds and what a
loaded one may change; a lower layer that imports nothing from ``methods/``.

- ``common.py``: the shared vocabulary (:class:`CheckpointError`, ``META_KEY``)
  and :func:`find_methods`, which finds methods by their recorded frozen set.
- ``record.py``: the method record written into state dicts and packs, the one
  comparison of two records and the one frozen-identity check.
- ``policy.py``: saving without the frozen backbone, and the load pre-hook every
  method registers.
- ``files.py``, ``pack_file.py``: reading checkpoint and pack files.
- ``pack.py``: making, checking and loading packs for a model.
- ``safe_load.py``: lets torch >= 2.6 load mmengine checkpoints safely.

The mmengine glue (hooks, the ``CheckpointLoader`` scheme for packs, ``--prompts``)
is in ``protune_mm/engine``.
"""
from . import safe_load  # noqa: F401  (lets torch>=2.6 load mmengine checkpoints)
from .common import (META_KEY, CheckpointError, find_methods, find_wrappers,
                     frozen_keys)
from .files import check_readable, read_checkpoint
from .pack import (LoadResult, check_prompt_pack, export_prompt_pack, load_prompt_pack,
                   make_prompt_pack, pack_nbytes)
from .pack_file import (PromptPack, is_prompt_pack, read_pack_metadata, read_prompt_pack,
                        save_prompt_pack)
from .policy import strip_frozen
from .policy import wrapper_load_pre_hook  # noqa: F401  (every method registers it)
from .record import frozen_identity, state_identity
from .record import record_method  # noqa: F401  (every method registers it)

__all__ = ['PromptPack', 'LoadResult', 'load_prompt_pack', 'read_prompt_pack',
           'read_pack_metadata', 'save_prompt_pack', 'make_prompt_pack',
           'export_prompt_pack', 'check_prompt_pack', 'is_prompt_pack', 'pack_nbytes',
           'read_checkpoint', 'CheckpointError', 'META_KEY', 'check_readable',
           'find_methods', 'find_wrappers', 'frozen_identity', 'state_identity',
           'frozen_keys', 'strip_frozen']
