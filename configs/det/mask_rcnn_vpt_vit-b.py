# VPT-deep prompts on a frozen ImageNet-21k/1k ViT-B/16 (timm vit_base_patch16_224) in Mask R-CNN on COCO 2017; data/1x schedule from mmdet's mask-rcnn_r50_fpn_1x_coco, AdamW as mask_rcnn_protune_r50.py.
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
          '../_base_/protune_runtime.py', '../_base_/protune_optim.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='protune_mm.VPT',
        # A plain ViT gives stride-16 maps; TimmViT resamples the outputs of
        # blocks 2, 5, 8, 11 to strides 4/8/16/32 without parameters (a learned
        # deconvolution would stay random inside the frozen wrapper).
        backbone=dict(
            type='protune_mm.TimmViT',
            model_name='vit_base_patch16_224',
            init_cfg=dict(type='Pretrained',
                          checkpoint='timm://vit_base_patch16_224')),
        # VPT-deep with 50 tokens, a value of VPT's search grid
        # {1, 5, 10, 50, 100, 200}.
        num_tokens=50,
        deep=True,
        dropout=0.1),
    neck=dict(in_channels=[768, 768, 768, 768]))

# AdamW lr 2e-4 as the other configs here; prompts get no weight decay, as in VPT.
optim_wrapper = _base_.pop('protune_optim').det_vpt
