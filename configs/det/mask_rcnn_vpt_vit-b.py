# VPT-deep prompts on a frozen ImageNet-21k/1k ViT-B/16 (timm vit_base_patch16_224) in Mask R-CNN on COCO 2017; data/1x schedule from mmdet's mask-rcnn_r50_fpn_1x_coco, AdamW as mask_rcnn_protune_r50.py.
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
          '../_base_/protune_runtime.py', '../_base_/protune_optim.py', '../_base_/timm_vit-b.py']

# ViT-B/16 (../_base_/timm_vit-b.py: a plain ViT resampled to 4 scales) in place of
# the stock ResNet, in VPT-deep with 50 tokens, a value of VPT's search grid
# {1, 5, 10, 50, 100, 200}.
model = dict(
    backbone=dict(_delete_=True, type='protune_mm.VPT', backbone=_base_.pop('timm_vit_b'),
                  num_tokens=50, deep=True, dropout=0.1),
    neck=dict(in_channels=[768, 768, 768, 768]))

# AdamW lr 2e-4 as the other configs here; prompts get no weight decay, as in VPT.
optim_wrapper = _base_.pop('protune_optim').det_vpt
