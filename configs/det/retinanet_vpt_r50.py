# VPT pad prompts (learned border pixels) on a frozen ImageNet ResNet-50 in RetinaNet on COCO 2017; data/schedule from mmdet's retinanet_r50_fpn_1x_coco, AdamW as mask_rcnn_protune_r50.py.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', '../_base_/protune_runtime.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='protune_mm.VPT',
        # The stock backbone, frozen and in eval mode by the wrapper.
        backbone=dict(
            type='ResNet',
            depth=50,
            num_stages=4,
            out_indices=(0, 1, 2, 3),
            frozen_stages=-1,
            norm_cfg=dict(type='BN', requires_grad=True),
            norm_eval=True,
            style='pytorch',
            init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
        # VPT on ConvNets: prompts are pixels on a band around the image (here
        # 10 px wide, replacing the band so boxes stay aligned); no deep prompts.
        location='pad',
        num_tokens=10,
        deep=False,
        dropout=0.1))

# AdamW lr 2e-4 instead of the stock SGD (see mask_rcnn_protune_r50.py); prompts
# get no weight decay, as in VPT.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'backbone.prompts': dict(decay_mult=0.)}))
