# VPT-deep prompts on a frozen ImageNet-1k Swin-T in Mask R-CNN on COCO 2017; data/schedule/AdamW from mmdet's mask-rcnn_swin-t-p4-w7_fpn_1x_coco, lr doubled here.
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py', '../_base_/protune_runtime.py']

pretrained = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_tiny_patch4_window7_224.pth'  # noqa
model = dict(
    backbone=dict(
        _delete_=True,
        type='protune_mm.VPT',
        # The stock backbone, frozen and in eval mode by the wrapper.
        backbone=dict(
            type='SwinTransformer',
            embed_dims=96,
            depths=[2, 2, 6, 2],
            num_heads=[3, 6, 12, 24],
            window_size=7,
            mlp_ratio=4,
            qkv_bias=True,
            qk_scale=None,
            drop_rate=0.,
            attn_drop_rate=0.,
            drop_path_rate=0.2,
            patch_norm=True,
            out_indices=(0, 1, 2, 3),
            with_cp=False,
            convert_weights=True,
            init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
        # VPT-deep: 10 prompt tokens per block, joined to every window (the
        # official VPT Swin code; VPT-shallow is not supported for Swin).
        num_tokens=10,
        deep=True,
        dropout=0.1))

# Stock AdamW; lr 1e-4 -> 2e-4 as only prompts, FPN and heads learn. Prompts get
# no weight decay, as in VPT. Not tuned here (no GPU).
optim_wrapper = dict(
    optimizer=dict(lr=2e-4),
    paramwise_cfg=dict(custom_keys={'backbone.prompts': dict(decay_mult=0.)}))
