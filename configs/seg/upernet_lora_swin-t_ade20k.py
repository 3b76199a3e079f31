# LoRA (rank 8) on the attention qkv of every block of a frozen ImageNet-1k Swin-T in UPerNet on ADE20K (512x512 crops, 160k iters); data/schedule/AdamW from mmseg's swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512, lr doubled here.
_base_ = ['mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py', '../_base_/protune_runtime.py']

# The stock backbone with a rank-8 update of each block's fused q/k/v projection
# (scale alpha / rank = 1), peft's defaults; B starts at zero, so training starts
# from the stock segmentor's features.
model = dict(backbone=dict(_delete_=True, type='protune_mm.LoRA',
                           backbone=_base_.model.backbone,
                           rank=8, alpha=8, dropout=0.0, targets=('qkv', )))

# Stock AdamW and schedule; lr 6e-5 -> 1.2e-4 as only LoRA and heads learn. A and
# B keep the stock weight decay (no exemption). Not tuned here (no GPU).
optim_wrapper = dict(optimizer=dict(lr=1.2e-4))
