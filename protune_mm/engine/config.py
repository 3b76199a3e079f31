"""Config surgery for ``tools/test.py CONFIG CHECKPOINT --prompts PACK``."""
from typing import Optional

from ..checkpoint.common import CheckpointError
from ..checkpoint.files import file_metadata
from ..checkpoint.pack_file import pack_metadata
from ..checkpoint.record import type_name


def ensure_pack_hook(cfg, prompts: Optional[str] = None) -> bool:
    """Make the runner built from ``cfg`` validate the packs it loads, and load
    the prompts pack ``prompts`` on top of its checkpoint.

    ``prompts`` is checked here from its header alone (a missing, truncated or
    wrong file fails before any model is built); the hook reads it once, when it
    loads it. Adds ``PromptCheckpointHook(save_frozen=True)`` to
    ``cfg.custom_hooks`` unless a PromptCheckpointHook is there
    (``save_frozen=True``: it does not change how checkpoints are saved).
    Returns True if it added one.
    """
    if prompts is not None:
        metadata = pack_metadata(file_metadata(prompts), str(prompts))
        if metadata is None or metadata['kind'] != 'prompts':
            raise CheckpointError(f'--prompts {prompts}: not a prompts-only pack '
                                  '(export one with tools/export_prompts.py --what '
                                  'prompts)')
    hooks = list(cfg.get('custom_hooks', None) or [])
    for hook in hooks:
        t = hook.get('type') if isinstance(hook, dict) else type(hook)
        if type_name(t).split('.')[-1] == 'PromptCheckpointHook':
            if prompts is not None:
                hook['prompts'] = prompts
            return False
    hook = dict(type='protune_mm.PromptCheckpointHook', save_frozen=True)
    if prompts is not None:
        hook['prompts'] = prompts
    hooks.append(hook)
    cfg.custom_hooks = hooks
    return True
