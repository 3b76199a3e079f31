# Pro-tuning of a frozen ImageNet-21k/1k ViT-B/16 (timm vit_base_patch16_224) in UPerNet on ADE20K; data/160k schedule from mmseg's upernet_r50_4xb4-160k_ade20k-512x512, AdamW as upernet_protune_r50_ade20k.py.
_base_ = ['mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py',
          '../_base_/protune_runtime.py', '../_base_/protune_optim.py', '../_base_/timm_vit-b.py']

# ViT-B/16 (../_base_/timm_vit-b.py) in place of the stock ResNet, in ProTune: one
# block per group of 3 transformer blocks, on the group's output (the ViT default:
# better than the input in the transfer study, docs/transfer_study.md).
model = dict(
    pretrained=None,
    backbone=dict(_delete_=True, type='protune_mm.ProTune', backbone=_base_.pop('timm_vit_b'),
                  stages=[0, 1, 2, 3], place='output', hidden_ratio=0.5),
    decode_head=dict(in_channels=[768, 768, 768, 768]),
    auxiliary_head=dict(in_channels=768))

# AdamW lr 1.2e-4 + warm-up/poly as upernet_protune_r50_ade20k.py.
param_scheduler = _base_.protune_optim.seg_schedule
optim_wrapper = _base_.pop('protune_optim').seg_protune
