# Head-only baseline: frozen ImageNet ResNet-50 (no prompts) in Mask R-CNN on COCO 2017; same data/schedule/optimizer as mask_rcnn_protune_r50.py.
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
          '../_base_/protune_runtime.py', '../_base_/protune_optim.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='protune_mm.Frozen',
        # The stock backbone as it is: the wrapper freezes all of it and keeps it
        # in eval mode (so frozen_stages, norm_eval and drop-path no longer act).
        backbone=_base_.model.backbone))

# The AdamW of mask_rcnn_protune_r50.py, so the two rows differ only by the prompts.
optim_wrapper = _base_.pop('protune_optim').det
