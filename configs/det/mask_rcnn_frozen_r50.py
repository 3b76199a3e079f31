# Head-only baseline: frozen ImageNet ResNet-50 (no prompts) in Mask R-CNN on COCO 2017; same data/schedule/optimizer as mask_rcnn_protune_r50.py.
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', '../_base_/protune_runtime.py', '../_base_/protune_optim.py']

# The stock backbone, frozen, no prompts.
model = dict(backbone=dict(_delete_=True, type='protune_mm.Frozen',
                           backbone=_base_.model.backbone))

# The AdamW of mask_rcnn_protune_r50.py, so the two rows differ only by the prompts.
optim_wrapper = _base_.pop('protune_optim').det
