"""The stack imports with compiled ops, registries are wired, stock configs load."""
import torch


def test_compiled_mmcv_ops():
    from mmcv.ops import RoIAlign, nms
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    dets, keep = nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [0, 2]
    feat = torch.arange(16.).view(1, 1, 4, 4)
    rois = torch.tensor([[0., 0., 0., 3., 3.]])
    out = RoIAlign(output_size=2, spatial_scale=1.0, sampling_ratio=1)(feat, rois)
    assert out.shape == (1, 1, 2, 2)


def test_openmmlab_models_import():
    import mmdet.models  # noqa: F401  needs mmcv._ext
    import mmseg.models  # noqa: F401
    import timm
    assert timm.create_model('vit_tiny_patch16_224', pretrained=False, depth=1)


def test_registries_are_children_of_mmengine():
    from mmengine.registry import HOOKS, MODELS

    import protune_mm
    assert protune_mm.MODELS.parent is MODELS and protune_mm.MODELS.scope == 'protune_mm'
    assert protune_mm.HOOKS.parent is HOOKS and protune_mm.HOOKS.scope == 'protune_mm'
    for scope in ('mmdet', 'mmseg'):
        from mmengine.registry import DefaultScope
        import importlib
        registry = importlib.import_module(f'{scope}.registry').MODELS
        with DefaultScope.overwrite_default_scope(scope):
            assert registry.get('protune_mm.ProTune') is protune_mm.ProTune
            assert registry.get('protune_mm.TimmViT') is protune_mm.TimmViT


def test_stock_config_loads_through_scope_inheritance(tmp_path):
    from mmengine.config import Config
    cfg_file = tmp_path / 'cfg.py'
    cfg_file.write_text(
        "_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'\n"
        "custom_imports = dict(imports=['protune_mm'], allow_failed_imports=False)\n"
        "model = dict(backbone=dict(_delete_=True, type='protune_mm.ProTune',\n"
        "    backbone=dict(type='ResNet', depth=18, init_cfg=None)))\n")
    cfg = Config.fromfile(str(cfg_file))
    assert cfg.model.type == 'MaskRCNN'
    assert cfg.model.backbone.type == 'protune_mm.ProTune'
    assert cfg.model.roi_head.bbox_head.num_classes == 80
    assert 'num_stages' not in cfg.model.backbone  # _delete_ dropped the stock keys
