# VPT-deep prompts on a frozen ImageNet-1k Swin-T in UPerNet on ADE20K (512x512 crops, 160k iters); data/schedule/AdamW from mmseg's swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512, lr doubled here.
_base_ = ['mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py', '../_base_/protune_runtime.py']

checkpoint_file = 'https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/swin/swin_tiny_patch4_window7_224_20220317-1cdeb081.pth'  # noqa
model = dict(
    backbone=dict(
        _delete_=True,
        type='protune_mm.VPT',
        # The stock backbone (frozen and in eval mode by the wrapper, so its
        # drop-path is off).
        backbone=dict(
            type='SwinTransformer',
            pretrain_img_size=224,
            embed_dims=96,
            patch_size=4,
            window_size=7,
            mlp_ratio=4,
            depths=[2, 2, 6, 2],
            num_heads=[3, 6, 12, 24],
            strides=(4, 2, 2, 2),
            out_indices=(0, 1, 2, 3),
            qkv_bias=True,
            qk_scale=None,
            patch_norm=True,
            drop_rate=0.,
            attn_drop_rate=0.,
            drop_path_rate=0.3,
            use_abs_pos_embed=False,
            act_cfg=dict(type='GELU'),
            norm_cfg=dict(type='LN', requires_grad=True),
            init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)),
        # VPT-deep: 10 prompt tokens per block, joined to every window (the
        # official VPT Swin code; VPT-shallow is not supported for Swin).
        num_tokens=10,
        deep=True,
        dropout=0.1))

# Stock AdamW and schedule; lr 6e-5 -> 1.2e-4 as only prompts and heads learn.
# Prompts get no weight decay, as in VPT. Not tuned here (no GPU).
optim_wrapper = dict(
    optimizer=dict(lr=1.2e-4),
    paramwise_cfg=dict(custom_keys={'backbone.prompts': dict(decay_mult=0.)}))
