# What every prompt-tuning config adds to a stock one: the package, the parameter
# report at the start of training, checkpoints without the frozen backbone (it is
# reloaded from its init_cfg; save_frozen=True writes full checkpoints), and each
# image's own region for VPT pad prompts in padded batches. Each config puts the
# stock backbone, as it is, inside a protune_mm wrapper (ProTune, VPT, Frozen),
# which freezes all of it and keeps it in eval mode (so frozen_stages, norm_eval
# and drop-path no longer act).
custom_imports = dict(imports=['protune_mm'], allow_failed_imports=False)
custom_hooks = [
    dict(type='protune_mm.ParamReportHook'),
    dict(type='protune_mm.PromptCheckpointHook', save_frozen=False),
    dict(type='protune_mm.ImageRegionHook'),
]
