# What every prompt-tuning config adds to a stock one: the package, the parameter
# report at the start of training, and checkpoints without the frozen backbone
# (it is reloaded from its init_cfg; save_frozen=True writes full checkpoints).
custom_imports = dict(imports=['protune_mm'], allow_failed_imports=False)
custom_hooks = [
    dict(type='protune_mm.ParamReportHook'),
    dict(type='protune_mm.PromptCheckpointHook', save_frozen=False),
]
