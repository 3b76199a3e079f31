"""mmengine glue: runner hooks, the ``CheckpointLoader`` scheme that reads prompt
packs (registered by :func:`register_pack_scheme`, which ``import protune_mm``
calls), the ``--prompts`` config surgery and the parameter report."""
from .config import ensure_pack_hook
from .hooks import ImageRegionHook, ParamReportHook, PromptCheckpointHook
from .loader import load_pack_as_checkpoint, register_pack_scheme
from .report import format_report, method_notes, parameter_report, skipped_prompts

__all__ = ['ImageRegionHook', 'ParamReportHook', 'PromptCheckpointHook', 'parameter_report',
           'format_report', 'method_notes', 'skipped_prompts', 'ensure_pack_hook',
           'load_pack_as_checkpoint', 'register_pack_scheme']
