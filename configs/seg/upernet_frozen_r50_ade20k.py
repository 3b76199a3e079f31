# Head-only baseline: frozen ImageNet ResNet-50-V1c (no prompts) in UPerNet on ADE20K; same data/schedule/optimizer as upernet_protune_r50_ade20k.py.
_base_ = ['mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py', '../_base_/protune_runtime.py']

model = dict(
    # Weights come from the inner backbone's init_cfg (see the ProTune config).
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='protune_mm.Frozen',
        # The stock backbone, entirely frozen and in eval mode by the wrapper.
        backbone=dict(
            type='ResNetV1c',
            depth=50,
            num_stages=4,
            out_indices=(0, 1, 2, 3),
            dilations=(1, 1, 1, 1),
            strides=(1, 2, 2, 2),
            norm_cfg=dict(type='SyncBN', requires_grad=True),
            norm_eval=False,
            style='pytorch',
            contract_dilation=True,
            init_cfg=dict(type='Pretrained',
                          checkpoint='open-mmlab://resnet50_v1c'))))

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
