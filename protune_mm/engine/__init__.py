from .hooks import ParamReportHook, PromptCheckpointHook
from .report import format_report, parameter_report, skipped_prompts

__all__ = ['ParamReportHook', 'PromptCheckpointHook', 'parameter_report',
           'format_report', 'skipped_prompts']
