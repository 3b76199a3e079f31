# Pro-tuning of a frozen ImageNet ResNet-50 in Mask R-CNN on COCO 2017; data/schedule from mmdet's mask-rcnn_r50_fpn_1x_coco, AdamW lr chosen here (see optim_wrapper).
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', '../_base_/protune_runtime.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='protune_mm.ProTune',
        # The stock backbone as it is: the wrapper freezes all of it and keeps it
        # in eval mode (so frozen_stages, norm_eval and drop-path no longer act).
        backbone=_base_.model.backbone,
        # A prompt block at the input of each of the 4 stages; half-width
        # blocks keep the prompts at ~3% of the backbone (protune.py).
        stages=[0, 1, 2, 3],
        place='input',
        hidden_ratio=0.5))

# AdamW as in mmdet's Swin-T Mask R-CNN (mask-rcnn_swin-t-p4-w7_fpn_1x_coco:
# lr 1e-4, wd 0.05, batch 16) instead of the stock SGD; lr doubled to 2e-4 as
# only the new parts (prompts, FPN, heads) learn. A starting point, not tuned
# here (no GPU); the schedule (1x, warm-up, steps at 8 and 11) is the stock one.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=0.05),
    # ProTune output scales start at 0; weight decay would pull the prompt
    # blocks back to the identity.
    paramwise_cfg=dict(custom_keys={
        f'backbone.prompts.{i}.scale': dict(decay_mult=0.) for i in range(4)}))
