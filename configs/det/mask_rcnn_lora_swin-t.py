# LoRA (rank 8) on the attention qkv of every block of a frozen ImageNet-1k Swin-T in Mask R-CNN on COCO 2017; data/schedule/AdamW from mmdet's mask-rcnn_swin-t-p4-w7_fpn_1x_coco, lr doubled here.
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py', '../_base_/protune_runtime.py']

# The stock backbone with a rank-8 update of each block's fused q/k/v projection
# (scale alpha / rank = 1), peft's defaults; B starts at zero, so training starts
# from the stock detector's features.
model = dict(backbone=dict(_delete_=True, type='protune_mm.LoRA',
                           backbone=_base_.model.backbone,
                           rank=8, alpha=8, dropout=0.0, targets=('qkv', )))

# Stock AdamW; lr 1e-4 -> 2e-4 as only LoRA, FPN and heads learn. A and B keep
# the stock weight decay (no exemption). Not tuned here (no GPU).
optim_wrapper = dict(optimizer=dict(lr=2e-4))
