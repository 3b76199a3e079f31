# Head-only baseline: frozen ImageNet ResNet-50-V1c (no prompts) in UPerNet on ADE20K; same data/schedule/optimizer as upernet_protune_r50_ade20k.py.
_base_ = ['mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py', '../_base_/protune_runtime.py', '../_base_/protune_optim.py']

# The stock backbone, frozen, no prompts. The stock model.pretrained becomes its
# init_cfg (the wrapper takes no pretrained).
model = dict(pretrained=None, backbone=dict(
    _delete_=True, type='protune_mm.Frozen',
    backbone=dict(_base_.model.backbone,
                  init_cfg=dict(type='Pretrained', checkpoint=_base_.model.pretrained))))

# The AdamW + poly of upernet_protune_r50_ade20k.py, so the two rows differ only by
# the prompts.
param_scheduler = _base_.protune_optim.seg_schedule
optim_wrapper = _base_.pop('protune_optim').seg
