# Head-only baseline: frozen ImageNet ResNet-50 (no prompts) in Mask R-CNN on COCO 2017; same data/schedule/optimizer as mask_rcnn_protune_r50.py.
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', '../_base_/protune_runtime.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='protune_mm.Frozen',
        # The stock backbone, entirely frozen and in eval mode by the wrapper.
        backbone=dict(
            type='ResNet',
            depth=50,
            num_stages=4,
            out_indices=(0, 1, 2, 3),
            frozen_stages=-1,
            norm_cfg=dict(type='BN', requires_grad=True),
            norm_eval=True,
            style='pytorch',
            init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50'))))

# As in mask_rcnn_protune_r50.py, so the two rows differ only by the prompts.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=0.05))
