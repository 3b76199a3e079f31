"""Every config in configs/ loads through the stock mmdet/mmseg base and builds the
model it promises (pretrained weights are not loaded: init_weights is not called)."""
import importlib
import os.path as osp
import re

import pytest
from mmengine.config import Config
from mmengine.hub import get_config
from mmengine.registry import DefaultScope

from conftest import CONFIGS, config_path

# config name -> (wrapper class, inner backbone class, model class)
EXPECTED = {
    'mask_rcnn_protune_r50': ('ProTune', 'ResNet', 'MaskRCNN'),
    'mask_rcnn_protune_swin-t': ('ProTune', 'SwinTransformer', 'MaskRCNN'),
    'mask_rcnn_protune_convnext-t': ('ProTune', 'ConvNeXt', 'MaskRCNN'),
    'mask_rcnn_vpt_vit-b': ('VPT', 'TimmViT', 'MaskRCNN'),
    'mask_rcnn_vpt_swin-t': ('VPT', 'SwinTransformer', 'MaskRCNN'),
    'mask_rcnn_frozen_r50': ('Frozen', 'ResNet', 'MaskRCNN'),
    'retinanet_protune_r50': ('ProTune', 'ResNet', 'RetinaNet'),
    'retinanet_vpt_r50': ('VPT', 'ResNet', 'RetinaNet'),
    'upernet_protune_r50_ade20k': ('ProTune', 'ResNetV1c', 'EncoderDecoder'),
    'upernet_protune_swin-t_ade20k': ('ProTune', 'SwinTransformer', 'EncoderDecoder'),
    'upernet_vpt_vit-b_ade20k': ('VPT', 'TimmViT', 'EncoderDecoder'),
    'upernet_protune_vit-b_ade20k': ('ProTune', 'TimmViT', 'EncoderDecoder'),
    'upernet_vpt_swin-t_ade20k': ('VPT', 'SwinTransformer', 'EncoderDecoder'),
    'upernet_frozen_r50_ade20k': ('Frozen', 'ResNetV1c', 'EncoderDecoder'),
    'setr_vpt_vit-l_ade20k': ('VPT', 'VisionTransformer', 'EncoderDecoder'),
    'segformer_protune_mit-b0_ade20k': ('ProTune', 'MixVisionTransformer',
                                        'EncoderDecoder'),
}

# Models reused by several tests; the others are built, checked and dropped
# (keeping every full-size model would take gigabytes).
_KEEP = ('mask_rcnn_protune_r50', 'upernet_vpt_swin-t_ade20k')
_built = {}


def config_name(path):
    return osp.splitext(osp.basename(path))[0]


def build(path):
    """(config, model) of a config file; init_weights is not called (no download)."""
    if path in _built:
        return _built[path]
    cfg = Config.fromfile(path)
    scope = cfg.default_scope
    registry = importlib.import_module(f'{scope}.registry').MODELS
    with DefaultScope.overwrite_default_scope(scope):
        built = (cfg, registry.build(cfg.model))
    if config_name(path) in _KEEP:
        _built[path] = built
    return built


def test_every_config_is_covered():
    assert sorted(map(config_name, CONFIGS)) == sorted(EXPECTED)


@pytest.mark.parametrize('path', CONFIGS, ids=config_name)
def test_config_header_and_hooks(path):
    with open(path) as f:
        first = f.readline()
    assert first.startswith('# ') and len(first.strip()) > 20, \
        f'{path} must start with a one-line comment of what it trains'
    cfg = Config.fromfile(path)
    # protune_mm is imported, and so is whatever the stock base imports (mmpretrain's
    # backbones for ConvNeXt): a merge would replace the list, not join it.
    with open(path) as f:
        stock = get_config(re.search(r"'(mmdet|mmseg)::[^']+'", f.read())[0][1:-1])
    assert cfg.custom_imports == dict(
        imports=stock.get('custom_imports', {}).get('imports', []) + ['protune_mm'],
        allow_failed_imports=False)
    hooks = [h['type'] for h in cfg.custom_hooks]
    assert 'protune_mm.ParamReportHook' in hooks
    assert 'protune_mm.PromptCheckpointHook' in hooks
    assert 'protune_mm.ImageRegionHook' in hooks  # VPT pad: each image's own region
    ckpt_hook = [h for h in cfg.custom_hooks if h['type'] == 'protune_mm.PromptCheckpointHook']
    assert ckpt_hook[0].get('save_frozen', False) is False  # small checkpoints by default
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    # The stock base is inherited: dataset and metric are untouched.
    # mmseg's EncoderDecoder would copy model.pretrained into the wrapper's
    # arguments: the weights come from the inner backbone's init_cfg instead.
    assert cfg.model.get('pretrained') is None
    if cfg.default_scope == 'mmdet':
        assert cfg.train_dataloader.dataset.type == 'CocoDataset'
        assert cfg.val_evaluator.type == 'CocoMetric'
    else:
        assert cfg.default_scope == 'mmseg'
        assert cfg.train_dataloader.dataset.type == 'ADE20KDataset'
        assert cfg.val_evaluator.type == 'IoUMetric'
        assert cfg.model.decode_head.num_classes == 150


@pytest.mark.parametrize('path', CONFIGS, ids=config_name)
def test_config_builds_the_promised_model(path):
    import protune_mm
    cfg, model = build(path)
    wrapper_cls, inner_cls, model_cls = EXPECTED[config_name(path)]
    assert type(model).__name__ == model_cls
    assert type(model.backbone) is getattr(protune_mm, wrapper_cls)
    assert type(model.backbone.backbone).__name__ == inner_cls
    # Frozen backbone: no trainable parameter; prompts: all trainable.
    assert not any(p.requires_grad for p in model.backbone.backbone.parameters())
    prompts = list(model.backbone.prompts.parameters())
    assert all(p.requires_grad for p in prompts)
    assert (len(prompts) == 0) == (wrapper_cls == 'Frozen')
    # The pretrained source of the frozen backbone is configured (it is what
    # small checkpoints are completed with).
    init = cfg.model.backbone.backbone.init_cfg
    assert init['type'] == 'Pretrained' and init['checkpoint']


def _paramwise_groups(cfg, model):
    from mmengine.optim import build_optim_wrapper
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        optim = build_optim_wrapper(model, cfg.optim_wrapper)
    decay = {}
    names = {id(p): n for n, p in model.named_parameters()}
    for group in optim.optimizer.param_groups:
        for p in group['params']:
            decay[names[id(p)]] = group['weight_decay']
    return decay


@pytest.mark.parametrize('name', ['mask_rcnn_protune_r50', 'upernet_vpt_swin-t_ade20k',
                                  'upernet_protune_vit-b_ade20k'])
def test_no_weight_decay_on_scales_and_prompts(name):
    path = config_path(name)
    cfg, model = build(path)
    decay = _paramwise_groups(cfg, model)
    prompt_decay = {n: d for n, d in decay.items() if n.startswith('backbone.prompts.')}
    assert prompt_decay
    if 'protune' in name:
        scales = {n: d for n, d in prompt_decay.items() if n.endswith('.scale')}
        assert scales and set(scales.values()) == {0.0}
        # The prompt convolutions keep the normal decay.
        assert {d for n, d in prompt_decay.items() if not n.endswith('.scale')} == \
            {cfg.optim_wrapper.optimizer.weight_decay}
    else:
        assert set(prompt_decay.values()) == {0.0}
    assert decay['decode_head.conv_seg.weight' if 'upernet' in name else
                 'neck.lateral_convs.0.conv.weight'] == cfg.optim_wrapper.optimizer.weight_decay


def test_protune_r50_detector_prompts_are_small():
    from protune_mm import parameter_report
    _, model = build(config_path('mask_rcnn_protune_r50'))
    report = parameter_report(model)
    backbone = report['frozen backbone']['total']
    prompts = report['prompts']['total']
    assert backbone == sum(p.numel() for p in model.backbone.backbone.parameters())
    assert 0 < prompts <= 0.05 * backbone, (prompts, backbone)
    assert report['prompts']['trainable'] == prompts
    assert report['frozen backbone']['trainable'] == 0

