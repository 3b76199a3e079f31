from .hooks import ImageRegionHook, ParamReportHook, PromptCheckpointHook
from .report import format_report, method_notes, parameter_report, skipped_prompts

__all__ = ['ImageRegionHook', 'ParamReportHook', 'PromptCheckpointHook', 'parameter_report',
           'format_report', 'method_notes', 'skipped_prompts']
