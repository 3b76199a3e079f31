from .hooks import ImageRegionHook, ParamReportHook, PromptCheckpointHook
from .report import format_report, parameter_report, skipped_prompts

__all__ = ['ImageRegionHook', 'ParamReportHook', 'PromptCheckpointHook', 'parameter_report',
           'format_report', 'skipped_prompts']
