"""Real configs scaled down to seconds: tiny backbones, small images, a few iterations,
on the synthetic COCO / ADE20K sets (``protune_mm.data``). The tests and
tools/cuda_check.py train them."""
import copy
import os.path as osp
import uuid

# SyncBN -> BN everywhere in a nested config: one CPU process has no process group.
from protune_mm.sweep.configs import sync_bn_to_bn


def shrink_model(model):
    """Tiny inner backbone (random init) and heads adapted to its widths."""
    inner = model.backbone.backbone
    kind = inner.type
    if kind in ('ResNet', 'ResNetV1c'):
        inner.depth = 18
        widths = [64, 128, 256, 512]
    elif kind == 'SwinTransformer':
        inner.update(embed_dims=32, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8])
        widths = [32, 64, 128, 256]
    elif kind == 'mmpretrain.ConvNeXt':
        widths = [32, 64, 128, 256]
        inner.arch = dict(depths=[1, 1, 2, 1], channels=widths)
    elif kind == 'protune_mm.TimmViT':
        inner.model_kwargs = dict(embed_dim=64, depth=4, num_heads=2)
        widths = [64] * 4
    elif kind == 'VisionTransformer':  # mmseg's (SETR)
        inner.update(img_size=(128, 128), embed_dims=64, num_layers=4, num_heads=2,
                     out_indices=(0, 1, 2, 3))
        widths = [64] * 4
    elif kind == 'MixVisionTransformer':  # SegFormer's MiT
        inner.update(embed_dims=16, num_layers=[1, 1, 1, 1])
        widths = [16, 32, 80, 128]
    else:
        raise AssertionError(f'unknown backbone {kind}')
    inner.init_cfg = None
    sync_bn_to_bn(model)
    if model.type == 'EncoderDecoder':
        # Heads reading one level (SETR's) get its width, the others all four.
        heads = [model.decode_head] + _as_list(model.get('auxiliary_head'))
        for i, head in enumerate(heads):
            index = head.get('in_index', -1)
            head.in_channels = widths[index] if isinstance(index, int) else widths
            head.channels = 32 if i == 0 else 16
        if model.test_cfg.get('mode') == 'slide':
            model.test_cfg.update(crop_size=(128, 128), stride=(85, 85))
        model.data_preprocessor.size = (128, 128)
        return
    model.neck.update(in_channels=widths, out_channels=32)
    if model.type == 'RetinaNet':
        model.bbox_head.update(in_channels=32, feat_channels=32)
    else:
        model.rpn_head.update(in_channels=32, feat_channels=32)
        roi = model.roi_head
        roi.bbox_roi_extractor.out_channels = 32
        roi.mask_roi_extractor.out_channels = 32
        roi.bbox_head.update(in_channels=32, fc_out_channels=64)
        roi.mask_head.update(in_channels=32, conv_out_channels=32)
    # Untrained heads score every class below the stock 0.05 threshold; keep
    # the best few boxes so the COCO metric has something to evaluate.
    if model.type == 'RetinaNet':
        model.test_cfg.update(score_thr=0.0, nms_pre=100, max_per_img=20)
    else:
        model.test_cfg.rpn.update(nms_pre=100, max_per_img=50)
        model.test_cfg.rcnn.update(score_thr=0.0, max_per_img=20)
        model.train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=100)
        model.train_cfg.rcnn.sampler.num = 64


def _as_list(heads):
    return [] if heads is None else list(heads) if isinstance(heads, list) else [heads]


def _set_scale(pipeline, scale, crop):
    for t in pipeline:
        if t['type'] in ('Resize', 'RandomResize') and 'scale' in t:
            t['scale'] = scale
        if t['type'] == 'RandomCrop':
            t['crop_size'] = crop


def synthetic_data(root: str) -> dict:
    """The project's synthetic COCO / ADE20K sets under ``root``, tiny (4 train, 2 val,
    128 px): ``dict(coco=data_root, ade=data_root)`` as :func:`shrink` takes them."""
    from protune_mm.data import make_ade20k, make_coco
    make_coco(osp.join(root, 'coco'), num_train=4, num_val=2, image_size=128, seed=0)
    make_ade20k(osp.join(root, 'ade'), num_train=4, num_val=2, image_size=128, seed=0)
    return dict(coco=osp.join(root, 'coco') + '/',
                ade=osp.join(root, 'ade', 'ADEChallengeData2016'))


def shrink(cfg, data: dict, work_dir: str, iters: int = 2):
    """The real config, scaled down to a few CPU seconds, reading ``data``
    (``dict(coco=data_root, ade=data_root)``, as tests/conftest.py's ``synthetic_data``)."""
    cfg = copy.deepcopy(cfg)
    shrink_model(cfg.model)
    det = cfg.default_scope == 'mmdet'
    root = data['coco'] if det else data['ade']
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']
        loader.update(num_workers=0, persistent_workers=False)
        if split == 'train':  # val/test keep the stock batch size (1)
            loader.batch_size = 2
        loader.dataset.data_root = root
        _set_scale(loader.dataset.pipeline, (160, 128) if det else (256, 128),
                   (128, 128))
        if det and split != 'train':
            # The stock CocoMetric reads data/coco/annotations/... directly.
            cfg[f'{split}_evaluator'].ann_file = osp.join(root, loader.dataset.ann_file)
    if det:
        cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1, val_interval=1)
        cfg.default_hooks.checkpoint.interval = 1
    else:
        cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters,
                             val_interval=iters)
        cfg.default_hooks.checkpoint.interval = iters
    cfg.default_hooks.logger.interval = 1
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=0)
    # Unique names: mmengine keeps loggers/message hubs per experiment name.
    cfg.experiment_name = f'test_{uuid.uuid4().hex[:8]}'
    return cfg


def shrink_for_training(cfg, data: dict, work_dir: str, iters: int):
    """:func:`shrink` for ``iters`` training iterations only: no validation or test
    (what tools/cuda_check.py checks is training)."""
    cfg = shrink(cfg, data, work_dir, iters=iters)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=iters + 1)
    for split in ('val', 'test'):
        cfg[f'{split}_dataloader'] = cfg[f'{split}_cfg'] = cfg[f'{split}_evaluator'] = None
    cfg.default_hooks.checkpoint.interval = iters
    return cfg
