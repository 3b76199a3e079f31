# Pro-tuning of a frozen ImageNet-1k MiT-B0 in SegFormer on ADE20K (512x512 crops, 160k iters); data/schedule/AdamW from mmseg's segformer_mit-b0_8xb2-160k_ade20k-512x512.
_base_ = ['mmseg::segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py', '../_base_/protune_runtime.py']

# The stock MiT-B0 (weights from its init_cfg) in ProTune, frozen and in eval mode
# (drop-path off): one prompt block at the input of each of its 4 stages (widths
# 32, 64, 160, 256).
model = dict(backbone=dict(_delete_=True, type='protune_mm.ProTune',
                           backbone=_base_.model.backbone,
                           stages=[0, 1, 2, 3], place='input', hidden_ratio=0.5))

# Stock AdamW (lr 6e-5, decode head x10, no decay on norms) and schedule; the
# prompt blocks are new like the head, so they get the head's x10. ProTune output
# scales start at 0: no decay, which would pull the blocks back to identity. Not
# tuned here.
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={
        'backbone.prompts': dict(lr_mult=10.),
        **{f'backbone.prompts.{i}.scale': dict(lr_mult=10., decay_mult=0.)
           for i in range(4)}}))
