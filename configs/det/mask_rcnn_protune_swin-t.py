# Pro-tuning of a frozen ImageNet-1k Swin-T in Mask R-CNN on COCO 2017; data/schedule/AdamW from mmdet's mask-rcnn_swin-t-p4-w7_fpn_1x_coco, lr doubled here.
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py', '../_base_/protune_runtime.py', '../_base_/protune_optim.py']

# The stock backbone in ProTune, blocks as in mask_rcnn_protune_r50.py.
model = dict(backbone=dict(_delete_=True, type='protune_mm.ProTune',
                           backbone=_base_.model.backbone,
                           stages=[0, 1, 2, 3], place='input', hidden_ratio=0.5))

# Stock AdamW (wd 0.05, no decay on norms/position tables); lr 1e-4 -> 2e-4 as
# only the new parts (prompts, FPN, heads) learn; no decay on the ProTune output
# scales (../_base_/protune_optim.py). Not tuned here (no GPU).
optim_wrapper = dict(optimizer=dict(lr=2e-4), paramwise_cfg=_base_.pop('protune_optim').protune)
