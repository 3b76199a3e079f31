# VPT pad prompts (learned border pixels) on a frozen ImageNet ResNet-50 in RetinaNet on COCO 2017; data/schedule from mmdet's retinanet_r50_fpn_1x_coco, AdamW as mask_rcnn_protune_r50.py.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', '../_base_/protune_runtime.py', '../_base_/protune_optim.py']

# The stock backbone in VPT. VPT on ConvNets: prompts are pixels on a band around
# the image (here 10 px wide, replacing the band so boxes stay aligned); no deep
# prompts.
model = dict(backbone=dict(_delete_=True, type='protune_mm.VPT',
                           backbone=_base_.model.backbone,
                           location='pad', num_tokens=10, deep=False, dropout=0.1))

# AdamW lr 2e-4 instead of the stock SGD (see mask_rcnn_protune_r50.py); prompts
# get no weight decay, as in VPT.
optim_wrapper = _base_.pop('protune_optim').det_vpt
