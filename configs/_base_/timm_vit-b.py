# The plain ViT of the ViT-B configs here: timm's vit_base_patch16_224 (ImageNet-21k,
# fine-tuned on 1k). A plain ViT gives stride-16 maps; TimmViT resamples the outputs
# of blocks 2, 5, 8, 11 to strides 4/8/16/32 without parameters (a learned
# deconvolution would stay random inside the frozen wrapper), 768 channels each.
# A config that lists this file in _base_ takes it as the wrapper's backbone,
#     backbone=_base_.pop('timm_vit_b')
# (pop: the helper does not stay in the resolved config; see protune_optim.py).
timm_vit_b = dict(type='protune_mm.TimmViT', model_name='vit_base_patch16_224',
                  init_cfg=dict(type='Pretrained', checkpoint='timm://vit_base_patch16_224'))
