# Head-only baseline: frozen ImageNet ResNet-50-V1c (no prompts) in UPerNet on ADE20K; same data/schedule/optimizer as upernet_protune_r50_ade20k.py.
_base_ = ['mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py', '../_base_/protune_runtime.py']

model = dict(
    # The stock model.pretrained becomes the inner backbone's init_cfg (below).
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='protune_mm.Frozen',
        # The stock backbone as it is: the wrapper freezes all of it and keeps it
        # in eval mode (so frozen_stages, norm_eval and drop-path no longer act).
        backbone=dict(_base_.model.backbone, init_cfg=dict(
            type='Pretrained', checkpoint=_base_.model.pretrained))))

# As in upernet_protune_r50_ade20k.py, so the two rows differ only by the prompts.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1.2e-4, betas=(0.9, 0.999), weight_decay=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000,
         by_epoch=False),
]
