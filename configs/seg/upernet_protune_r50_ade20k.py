# Pro-tuning of a frozen ImageNet ResNet-50-V1c in UPerNet on ADE20K (512x512 crops, 160k iters); data/schedule length from mmseg's upernet_r50_4xb4-160k_ade20k-512x512, AdamW + poly from mmseg's Swin-T UPerNet.
_base_ = ['mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py', '../_base_/protune_runtime.py']

model = dict(
    # The stock model.pretrained becomes the inner backbone's init_cfg (below).
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='protune_mm.ProTune',
        # The stock backbone as it is: the wrapper freezes all of it and keeps it
        # in eval mode (so frozen_stages, norm_eval and drop-path no longer act).
        backbone=dict(_base_.model.backbone, init_cfg=dict(
            type='Pretrained', checkpoint=_base_.model.pretrained)),
        stages=[0, 1, 2, 3],
        place='input',
        hidden_ratio=0.5))

# AdamW and warm-up + linear poly decay of mmseg's Swin-T UPerNet
# (swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512: lr 6e-5,
# wd 0.01, batch 16) instead of the stock SGD; lr doubled to 1.2e-4 as only the
# new parts (prompts, heads) learn. A starting point, not tuned here (no GPU).
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1.2e-4, betas=(0.9, 0.999), weight_decay=0.01),
    # ProTune output scales start at 0; decay would pull blocks back to identity.
    paramwise_cfg=dict(custom_keys={
        f'backbone.prompts.{i}.scale': dict(decay_mult=0.) for i in range(4)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000,
         by_epoch=False),
]
