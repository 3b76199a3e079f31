# The optimizers of the configs here, written once: AdamW in place of the stock
# optimizer (lr doubled from the recipe it follows, as only the new parts learn:
# prompts, neck, heads), and the prompt parameters that get no weight decay.
# Starting points, not tuned here (no GPU).
#
# mmengine refuses a key that two bases define, and every stock config defines
# optim_wrapper and param_scheduler, so this file defines one helper,
# protune_optim, whose entries a config that lists the file in _base_ takes:
#     optim_wrapper = _base_.pop('protune_optim').det_protune
# The config's last use of the helper pops it, so that the helper does not stay in
# the resolved config. Any part can be overridden as usual, in that config or in
# one that inherits it: optim_wrapper = dict(optimizer=dict(lr=1e-3)).
protune_optim = dict(
    # AdamW of mmdet's Swin-T Mask R-CNN (mask-rcnn_swin-t-p4-w7_fpn_1x_coco:
    # lr 1e-4, wd 0.05, batch 16) with lr 2e-4, in place of the stock SGD.
    det=dict(
        _delete_=True,
        type='OptimWrapper',
        optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=0.05)),
    # AdamW and warm-up + linear poly decay of mmseg's Swin-T UPerNet
    # (swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512: lr 6e-5,
    # wd 0.01, batch 16) with lr 1.2e-4, in place of the stock SGD.
    seg=dict(
        _delete_=True,
        type='OptimWrapper',
        optimizer=dict(type='AdamW', lr=1.2e-4, betas=(0.9, 0.999), weight_decay=0.01)),
    seg_schedule=[
        dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
        dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000,
             by_epoch=False),
    ],
    # paramwise_cfg by method. ProTune output scales start at 0; weight decay
    # would pull the prompt blocks back to the identity.
    protune=dict(custom_keys={
        f'backbone.prompts.{i}.scale': dict(decay_mult=0.) for i in range(4)}),
    # VPT prompts get no weight decay, as in VPT.
    vpt=dict(custom_keys={'backbone.prompts': dict(decay_mult=0.)}),
)
# det_protune, det_vpt, seg_protune, seg_vpt: the task's AdamW with the method's
# paramwise_cfg.
protune_optim.update({
    f'{task}_{method}': dict(protune_optim[task], paramwise_cfg=protune_optim[method])
    for task in ('det', 'seg') for method in ('protune', 'vpt')})
