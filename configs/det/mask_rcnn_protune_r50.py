# Pro-tuning of a frozen ImageNet ResNet-50 in Mask R-CNN on COCO 2017; data/schedule from mmdet's mask-rcnn_r50_fpn_1x_coco, AdamW lr chosen here (see optim_wrapper).
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', '../_base_/protune_runtime.py', '../_base_/protune_optim.py']

# The stock backbone in ProTune: a prompt block at the input of each of the 4
# stages; half-width blocks keep the prompts at ~3% of the backbone (protune.py).
model = dict(backbone=dict(_delete_=True, type='protune_mm.ProTune',
                           backbone=_base_.model.backbone,
                           stages=[0, 1, 2, 3], place='input', hidden_ratio=0.5))

# AdamW lr 2e-4 instead of the stock SGD, no weight decay on the ProTune output
# scales (../_base_/protune_optim.py); the schedule (1x, warm-up, steps at 8 and
# 11) is the stock one.
optim_wrapper = _base_.pop('protune_optim').det_protune
