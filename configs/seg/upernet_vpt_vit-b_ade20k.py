# VPT-deep prompts on a frozen ImageNet-21k/1k ViT-B/16 (timm vit_base_patch16_224) in UPerNet on ADE20K; data/160k schedule from mmseg's upernet_r50_4xb4-160k_ade20k-512x512, AdamW as upernet_protune_r50_ade20k.py.
_base_ = ['mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py',
          '../_base_/protune_runtime.py', '../_base_/protune_optim.py', '../_base_/timm_vit-b.py']

# ViT-B/16 (../_base_/timm_vit-b.py) in place of the stock ResNet, in VPT-deep with
# 50 tokens as ../det/mask_rcnn_vpt_vit-b.py.
model = dict(
    pretrained=None,
    backbone=dict(_delete_=True, type='protune_mm.VPT', backbone=_base_.pop('timm_vit_b'),
                  num_tokens=50, deep=True, dropout=0.1),
    decode_head=dict(in_channels=[768, 768, 768, 768]),
    auxiliary_head=dict(in_channels=768))

# AdamW lr 1.2e-4 + warm-up/poly as upernet_protune_r50_ade20k.py; prompts get
# no weight decay, as in VPT.
param_scheduler = _base_.protune_optim.seg_schedule
optim_wrapper = _base_.pop('protune_optim').seg_vpt
