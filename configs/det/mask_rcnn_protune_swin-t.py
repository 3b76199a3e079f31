# Pro-tuning of a frozen ImageNet-1k Swin-T in Mask R-CNN on COCO 2017; data/schedule/AdamW from mmdet's mask-rcnn_swin-t-p4-w7_fpn_1x_coco, lr doubled here.
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py', '../_base_/protune_runtime.py']

pretrained = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_tiny_patch4_window7_224.pth'  # noqa
model = dict(
    backbone=dict(
        _delete_=True,
        type='protune_mm.ProTune',
        # The stock backbone (frozen and in eval mode by the wrapper, so its
        # drop-path is off).
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
        stages=[0, 1, 2, 3],
        place='input',
        hidden_ratio=0.5))

# Stock AdamW (wd 0.05, no decay on norms/position tables); lr 1e-4 -> 2e-4 as
# only the new parts (prompts, FPN, heads) learn. Not tuned here (no GPU).
optim_wrapper = dict(
    optimizer=dict(lr=2e-4),
    # ProTune output scales start at 0; decay would pull blocks back to identity.
    paramwise_cfg=dict(custom_keys={
        f'backbone.prompts.{i}.scale': dict(decay_mult=0.) for i in range(4)}))
