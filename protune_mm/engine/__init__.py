from .hooks import ParamReportHook, PromptCheckpointHook
from .param_report import format_report, parameter_report
from .prompt_pack import (LoadResult, PromptPack, ensure_pack_hook, export_prompt_pack,
                          is_prompt_pack, load_prompt_pack, make_prompt_pack,
                          pack_nbytes, read_prompt_pack, save_prompt_pack)

__all__ = ['ParamReportHook', 'PromptCheckpointHook', 'parameter_report',
           'format_report', 'PromptPack', 'LoadResult', 'load_prompt_pack',
           'read_prompt_pack', 'save_prompt_pack', 'make_prompt_pack',
           'export_prompt_pack', 'is_prompt_pack', 'pack_nbytes', 'ensure_pack_hook']
