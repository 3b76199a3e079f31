# Pro-tuning of a frozen ImageNet ResNet-50-V1c in UPerNet on ADE20K (512x512 crops, 160k iters); data/schedule length from mmseg's upernet_r50_4xb4-160k_ade20k-512x512, AdamW + poly from mmseg's Swin-T UPerNet.
_base_ = ['mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py', '../_base_/protune_runtime.py', '../_base_/protune_optim.py']

# The stock backbone in ProTune, blocks as in ../det/mask_rcnn_protune_r50.py. The
# stock model.pretrained becomes its init_cfg (the wrapper takes no pretrained).
model = dict(pretrained=None, backbone=dict(
    _delete_=True, type='protune_mm.ProTune',
    backbone=dict(_base_.model.backbone,
                  init_cfg=dict(type='Pretrained', checkpoint=_base_.model.pretrained)),
    stages=[0, 1, 2, 3], place='input', hidden_ratio=0.5))

# AdamW and warm-up + linear poly decay of mmseg's Swin-T UPerNet with lr 1.2e-4
# instead of the stock SGD, no weight decay on the ProTune output scales
# (../_base_/protune_optim.py).
param_scheduler = _base_.protune_optim.seg_schedule
optim_wrapper = _base_.pop('protune_optim').seg_protune
