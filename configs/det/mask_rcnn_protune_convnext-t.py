# Pro-tuning of a frozen ImageNet-1k ConvNeXt-T (mmpretrain) in Mask R-CNN on COCO 2017; data/schedule from mmdet's mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco, AdamW lr doubled here.
_base_ = ['mmdet::convnext/mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py', '../_base_/protune_optim.py']

# ../_base_/protune_runtime.py cannot be a second base here: mmengine refuses a key
# defined by two bases, and the stock config defines custom_imports too (lists are
# replaced, not joined, on merge). Its content, with the stock import kept:
custom_imports = dict(imports=_base_.custom_imports.imports + ['protune_mm'],
                      allow_failed_imports=False)
custom_hooks = _base_.get('custom_hooks', []) + [
    dict(type='protune_mm.ParamReportHook'),
    dict(type='protune_mm.PromptCheckpointHook', save_frozen=False),
    dict(type='protune_mm.ImageRegionHook'),
]

# The stock backbone (mmpretrain.ConvNeXt, its 4 stages returned as maps) in
# ProTune, frozen and in eval mode (drop_path_rate no longer acts): a prompt block
# at the input of each stage (after its downsampling).
model = dict(backbone=dict(_delete_=True, type='protune_mm.ProTune',
                           backbone=_base_.model.backbone,
                           stages=[0, 1, 2, 3], place='input', hidden_ratio=0.5))

# Stock AdamW (lr 1e-4, wd 0.05) with lr doubled to 2e-4 as elsewhere here
# (../_base_/protune_optim.py). The stock layer-wise lr decay (mmdet's
# LearningRateDecayOptimizerConstructor) scales backbone layers, which are frozen
# here, and ignores custom_keys, so the default constructor is used. fp32 optimizer
# wrapper: train with --amp for the stock config's mixed precision.
optim_wrapper = _base_.pop('protune_optim').det_protune
