# VPT-deep prompts on a frozen ImageNet-1k Swin-T in UPerNet on ADE20K (512x512 crops, 160k iters); data/schedule/AdamW from mmseg's swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512, lr doubled here.
_base_ = ['mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py', '../_base_/protune_runtime.py', '../_base_/protune_optim.py']

# The stock backbone in VPT-deep: 10 prompt tokens per block, joined to every
# window (the official VPT Swin code; VPT-shallow is not supported for Swin).
model = dict(backbone=dict(_delete_=True, type='protune_mm.VPT',
                           backbone=_base_.model.backbone,
                           num_tokens=10, deep=True, dropout=0.1))

# Stock AdamW and schedule; lr 6e-5 -> 1.2e-4 as only prompts and heads learn.
# Prompts get no weight decay, as in VPT. Not tuned here (no GPU).
optim_wrapper = dict(optimizer=dict(lr=1.2e-4), paramwise_cfg=_base_.pop('protune_optim').vpt)
