"""Stock mmdet / mmseg configs take a prompt wrapper with a few lines (issue 3).

Each test loads a config shipped with mmdet / mmseg, wraps its backbone, shrinks it
to ResNet-18 with small inputs (SyncBN -> BN for CPU), builds the model with the
config's default scope and runs one ``train_step`` with an mmengine OptimWrapper.
"""
import importlib
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.registry import DefaultScope

import protune_mm  # noqa: F401  (what custom_imports does in a config)
from conftest import REPO, sync_bn_to_bn
from protune_mm import FrozenBackboneWrapper

pytest.importorskip('mmdet')
pytest.importorskip('mmseg')

R18_CHANNELS = [64, 128, 256, 512]


def stock_config(name: str) -> Config:
    """'mmdet::faster_rcnn/x.py' -> the config shipped in the installed package."""
    package, path = name.split('::')
    root = osp.dirname(importlib.import_module(package).__file__)
    return Config.fromfile(osp.join(root, '.mim', 'configs', path))


def wrap_backbone(cfg: Config, method: str = 'ProTune', **kwargs):
    """The swap a user writes: the stock backbone goes inside the wrapper. Here
    also shrunk to ResNet-18 without pretrained weights (no download)."""
    inner = dict(cfg.model.backbone, depth=18, init_cfg=None)
    cfg.model.backbone = dict(type=f'protune_mm.{method}', backbone=inner, **kwargs)


def shrink_two_stage(model: dict, width: int = 32):
    """Narrow neck/heads and fewer proposals: the same modules, CPU-sized."""
    model.neck.out_channels = width
    model.rpn_head.update(in_channels=width, feat_channels=width)
    roi = model.roi_head
    roi.bbox_roi_extractor.out_channels = width
    heads = roi.bbox_head if isinstance(roi.bbox_head, list) else [roi.bbox_head]
    for head in heads:
        head.update(in_channels=width, fc_out_channels=2 * width)
    if 'mask_head' in roi:
        roi.mask_roi_extractor.out_channels = width
        roi.mask_head.update(in_channels=width, conv_out_channels=width)
    model.train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=100)
    rcnn = model.train_cfg.rcnn
    for stage in rcnn if isinstance(rcnn, list) else [rcnn]:
        stage.sampler.num = 64


def det_batch(n=2, size=64):
    import numpy as np
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData

    g = torch.Generator().manual_seed(0)
    boxes = torch.tensor([[4., 6., 40., 50.], [20., 10., 60., 34.]])
    masks = np.zeros((2, size, size), dtype=np.uint8)
    for j, (x1, y1, x2, y2) in enumerate(boxes.int().tolist()):
        masks[j, y1:y2, x1:x2] = 1
    inputs, samples = [], []
    for i in range(n):
        inputs.append(torch.randint(0, 256, (3, size, size), generator=g,
                                    dtype=torch.uint8))
        sample = DetDataSample(metainfo=dict(img_id=i, img_shape=(size, size),
                                             ori_shape=(size, size),
                                             scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(bboxes=boxes.clone(),
                                           labels=torch.tensor([0, 5]),
                                           masks=BitmapMasks(masks, size, size))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def seg_batch(n=2, size=64, num_classes=19):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    g = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for _ in range(n):
        inputs.append(torch.randint(0, 256, (3, size, size), generator=g,
                                    dtype=torch.uint8))
        sample = SegDataSample(metainfo=dict(img_shape=(size, size),
                                             ori_shape=(size, size)))
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, num_classes, (1, size, size), generator=g))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def build_and_step(cfg: Config, batch: dict):
    """Build under the config's default scope, one train_step; returns the model,
    the wrapper, the loss and the frozen tensors before the step."""
    registry = importlib.import_module(f'{cfg.default_scope}.registry').MODELS
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = registry.build(cfg.model)
        wrapper = model.backbone
        assert isinstance(wrapper, FrozenBackboneWrapper)
        assert all(not p.requires_grad for p in wrapper.backbone.parameters())
        frozen = {k: v.clone() for k, v in wrapper.frozen_state_dict().items()}
        prompts = {k: v.clone() for k, v in wrapper.prompts.state_dict().items()}
        optim = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-3,
                                               weight_decay=0.05))
        model.train()
        log_vars = model.train_step(batch, optim)
    assert not any(m.training for m in wrapper.backbone.modules())
    loss = log_vars['loss']
    assert torch.isfinite(torch.as_tensor(loss)), log_vars
    state = wrapper.frozen_state_dict()
    changed = [k for k, v in state.items() if not torch.equal(v, frozen[k])]
    assert not changed, f'frozen tensors changed: {changed[:5]}'
    # The step reached the prompts (ProTune: at least the zero-init scales).
    moved = [k for k, v in wrapper.prompts.state_dict().items()
             if not torch.equal(v, prompts[k])]
    assert bool(moved) == bool(prompts)
    return model, wrapper


@pytest.mark.parametrize('config, method, kwargs', [
    ('mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', 'ProTune', {}),
    ('mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', 'VPT',
     dict(num_tokens=4, pad_base=64)),
    ('mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', 'Frozen', {}),
    ('mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py', 'ProTune', {}),
])
def test_detection_config_with_wrapped_backbone_trains(config, method, kwargs):
    cfg = stock_config(config)
    assert cfg.default_scope == 'mmdet'
    wrap_backbone(cfg, method, **kwargs)
    cfg.model.neck.in_channels = R18_CHANNELS
    shrink_two_stage(cfg.model)
    model, wrapper = build_and_step(cfg, det_batch())
    assert type(wrapper).__name__ == method
    assert type(wrapper.backbone).__module__ == 'mmdet.models.backbones.resnet'


@pytest.mark.parametrize('config, decode_head', [
    ('mmseg::fcn/fcn_r50-d8_4xb2-40k_cityscapes-512x1024.py', 'FCNHead'),
    ('mmseg::deeplabv3/deeplabv3_r50-d8_4xb2-40k_cityscapes-512x1024.py', 'ASPPHead'),
])
def test_segmentation_config_with_wrapped_backbone_trains(config, decode_head):
    cfg = stock_config(config)
    assert cfg.default_scope == 'mmseg'
    assert cfg.model.decode_head.type == decode_head
    # The stock model-level `pretrained` stays: EncoderDecoder hands it to the
    # wrapper, which gives it to the inner backbone (not loaded: no init_weights).
    stock_pretrained = cfg.model.pretrained
    wrap_backbone(cfg)
    sync_bn_to_bn(cfg.model)
    cfg.model.data_preprocessor.size = (64, 64)
    cfg.model.decode_head.update(in_channels=512, channels=32)
    cfg.model.auxiliary_head.update(in_channels=256, channels=32)
    model, wrapper = build_and_step(cfg, seg_batch())
    assert type(wrapper.backbone).__module__ == 'mmseg.models.backbones.resnet'
    assert type(wrapper.backbone).__name__ == 'ResNetV1c'
    assert wrapper.backbone_cfg['init_cfg'] == dict(type='Pretrained',
                                                   checkpoint=stock_pretrained)


def test_user_config_takes_the_base_optimizer_and_overrides_it(tmp_path):
    """A user's config over a stock one lists configs/_base_/protune_runtime.py and
    protune_optim.py, takes the det ProTune optimizer and changes its lr and one
    prompt scale's decay: the optimizer built from it has exactly that."""
    from mmengine.optim import build_optim_wrapper
    base = osp.join(REPO, 'configs', '_base_')
    user = tmp_path / 'user.py'
    user.write_text(
        "_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',\n"
        f"          {osp.join(base, 'protune_runtime.py')!r},\n"
        f"          {osp.join(base, 'protune_optim.py')!r}]\n"
        "model = dict(backbone=dict(_delete_=True, type='protune_mm.ProTune',\n"
        "                           backbone=_base_.model.backbone, stages=[0, 1, 2, 3]))\n"
        "optim_wrapper = _base_.pop('protune_optim').det_protune\n"
        "optim_wrapper.optimizer.lr = 1e-3\n"
        "optim_wrapper.paramwise_cfg.custom_keys['backbone.prompts.0.scale'] = "
        "dict(decay_mult=1.)\n")
    cfg = Config.fromfile(str(user))
    cfg.model.backbone.backbone.update(depth=18, init_cfg=None)
    cfg.model.neck.in_channels = R18_CHANNELS
    shrink_two_stage(cfg.model)
    registry = importlib.import_module('mmdet.registry').MODELS
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = registry.build(cfg.model)
        optim = build_optim_wrapper(model, cfg.optim_wrapper).optimizer
    assert type(optim).__name__ == 'AdamW'  # not the stock SGD
    names = {id(p): n for n, p in model.named_parameters()}
    groups = {names[id(p)]: g for g in optim.param_groups for p in g['params']}
    assert {g['lr'] for g in groups.values()} == {1e-3}
    decay = {n: g['weight_decay'] for n, g in groups.items()}
    assert decay['backbone.prompts.0.scale'] == decay['neck.fpn_convs.0.conv.weight'] == 0.05
    assert [decay[f'backbone.prompts.{i}.scale'] for i in (1, 2, 3)] == [0.0] * 3
