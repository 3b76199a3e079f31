# VPT-deep prompts on a frozen ImageNet-1k Swin-T in Mask R-CNN on COCO 2017; data/schedule/AdamW from mmdet's mask-rcnn_swin-t-p4-w7_fpn_1x_coco, lr doubled here.
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py', '../_base_/protune_runtime.py', '../_base_/protune_optim.py']

# The stock backbone in VPT-deep: 10 prompt tokens per block, joined to every
# window (the official VPT Swin code; VPT-shallow is not supported for Swin).
model = dict(backbone=dict(_delete_=True, type='protune_mm.VPT',
                           backbone=_base_.model.backbone,
                           num_tokens=10, deep=True, dropout=0.1))

# Stock AdamW; lr 1e-4 -> 2e-4 as only prompts, FPN and heads learn. Prompts get
# no weight decay, as in VPT. Not tuned here (no GPU).
optim_wrapper = dict(optimizer=dict(lr=2e-4), paramwise_cfg=_base_.pop('protune_optim').vpt)
