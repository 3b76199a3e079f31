# Pro-tuning of a frozen ImageNet-1k Swin-T in UPerNet on ADE20K (512x512 crops, 160k iters); data/schedule/AdamW from mmseg's swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512, lr doubled here.
_base_ = ['mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py', '../_base_/protune_runtime.py', '../_base_/protune_optim.py']

# The stock backbone in ProTune, blocks as in ../det/mask_rcnn_protune_r50.py.
model = dict(backbone=dict(_delete_=True, type='protune_mm.ProTune',
                           backbone=_base_.model.backbone,
                           stages=[0, 1, 2, 3], place='input', hidden_ratio=0.5))

# Stock AdamW (wd 0.01, no decay on norms/position tables) and schedule; lr
# 6e-5 -> 1.2e-4 as only the new parts (prompts, heads) learn; no decay on the
# ProTune output scales (../_base_/protune_optim.py). Not tuned here.
optim_wrapper = dict(optimizer=dict(lr=1.2e-4), paramwise_cfg=_base_.pop('protune_optim').protune)
