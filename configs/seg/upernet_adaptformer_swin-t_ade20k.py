# AdaptFormer (bottleneck 64, s = 0.1) beside the MLP of every block of a frozen ImageNet-1k Swin-T in UPerNet on ADE20K (512x512 crops, 160k iters); data/schedule/AdamW from mmseg's swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512, lr doubled here.
_base_ = ['mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py', '../_base_/protune_runtime.py']

# The stock backbone with a parallel bottleneck adapter (width 64, scale s = 0.1,
# the paper's defaults) beside each block's MLP; its up projection starts at zero,
# so training starts from the stock segmentor's features.
model = dict(backbone=dict(_delete_=True, type='protune_mm.AdaptFormer',
                           backbone=_base_.model.backbone,
                           bottleneck=64, scale=0.1, dropout=0.0))

# Stock AdamW and schedule; lr 6e-5 -> 1.2e-4 as only the adapters and heads
# learn. The adapters keep the stock weight decay (no exemption). Not tuned here
# (no GPU).
optim_wrapper = dict(optimizer=dict(lr=1.2e-4))
