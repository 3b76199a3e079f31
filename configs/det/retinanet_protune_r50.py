# Pro-tuning of a frozen ImageNet ResNet-50 in RetinaNet on COCO 2017; data/schedule from mmdet's retinanet_r50_fpn_1x_coco, AdamW as mask_rcnn_protune_r50.py.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', '../_base_/protune_runtime.py', '../_base_/protune_optim.py']

# The stock backbone in ProTune, blocks as in mask_rcnn_protune_r50.py.
model = dict(backbone=dict(_delete_=True, type='protune_mm.ProTune',
                           backbone=_base_.model.backbone,
                           stages=[0, 1, 2, 3], place='input', hidden_ratio=0.5))

# AdamW lr 2e-4 instead of the stock SGD (see mask_rcnn_protune_r50.py).
optim_wrapper = _base_.pop('protune_optim').det_protune
