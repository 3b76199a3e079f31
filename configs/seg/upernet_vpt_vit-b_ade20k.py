# VPT-deep prompts on a frozen ImageNet-21k/1k ViT-B/16 (timm vit_base_patch16_224) in UPerNet on ADE20K; data/160k schedule from mmseg's upernet_r50_4xb4-160k_ade20k-512x512, AdamW as upernet_protune_r50_ade20k.py.
_base_ = ['mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py',
          '../_base_/protune_runtime.py', '../_base_/protune_optim.py']

model = dict(
    pretrained=None,
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
    decode_head=dict(in_channels=[768, 768, 768, 768]),
    auxiliary_head=dict(in_channels=768))

# AdamW lr 1.2e-4 + warm-up/poly as upernet_protune_r50_ade20k.py; prompts get
# no weight decay, as in VPT.
param_scheduler = _base_.protune_optim.seg_schedule
optim_wrapper = _base_.pop('protune_optim').seg_vpt
