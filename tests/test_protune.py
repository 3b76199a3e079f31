"""ProTune and Frozen around frozen mmdet / mmseg / timm backbones (issue 3).

Everything runs on CPU with random weights: ResNet-18 (ResNet-50 only for the
parameter budget), Swin with embed_dims=32, a 4-block ViT of width 32.
"""
import copy
import logging

import pytest
import torch
import torch.nn as nn
from mmengine.registry import DefaultScope

import protune_mm  # noqa: F401  (registers the protune_mm scope)
from protune_mm import MODELS, Frozen, ProTune
from protune_mm.checkpoint import CheckpointError
from protune_mm.engine import parameter_report

pytest.importorskip('mmdet')
pytest.importorskip('mmseg')

TINY_VIT = dict(type='protune_mm.TimmViT', model_name='vit_tiny_patch16_224',
                model_kwargs=dict(depth=4, embed_dim=32, num_heads=2, img_size=64))
BACKBONES = {
    'mmdet.ResNet': dict(type='mmdet.ResNet', depth=18, out_indices=(0, 1, 2, 3)),
    'mmseg.ResNetV1c': dict(type='mmseg.ResNetV1c', depth=18, out_indices=(0, 1, 2, 3),
                            dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1)),
    'mmdet.SwinTransformer': dict(type='mmdet.SwinTransformer', embed_dims=32,
                                  depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8),
                                  window_size=4, out_indices=(0, 1, 2, 3)),
    'mmseg.SwinTransformer': dict(type='mmseg.SwinTransformer', embed_dims=32,
                                  depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8),
                                  window_size=4, out_indices=(0, 1, 2, 3)),
    'TimmViT': TINY_VIT,
}
R18_CHANNELS = [64, 128, 256, 512]


# -- helpers ---------------------------------------------------------------------------
def randomise(module: nn.Module, seed: int = 0) -> nn.Module:
    """Make the weights that start trivial non-trivial (norm affine/statistics at
    identity, Swin bias tables at zero), so equalities below are not vacuous.
    Conv/linear weights keep their (already random) init: scaling them up would
    blow the activations up through the depth."""
    g = torch.Generator().manual_seed(seed)

    def rand(t, scale):
        return torch.randn(t.shape, generator=g) * scale

    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)):
                if m.weight is not None:
                    m.weight.copy_(1 + rand(m.weight, 0.1))
                    m.bias.copy_(rand(m.bias, 0.1))
                if getattr(m, 'running_mean', None) is not None:
                    m.running_mean.copy_(rand(m.running_mean, 0.1))
                    m.running_var.copy_(1 + rand(m.running_var, 0.1).abs())
        for name, p in module.named_parameters():
            if 'relative_position_bias_table' in name:
                p.copy_(rand(p, 0.5))
    return module


def image(b=2, h=64, w=64, seed=1):
    return torch.randn(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def max_diff(outs_a, outs_b) -> float:
    assert len(outs_a) == len(outs_b)
    for a, b in zip(outs_a, outs_b):
        assert a.shape == b.shape
    return max((a - b).abs().max().item() for a, b in zip(outs_a, outs_b))


def frozen_snapshot(wrapper) -> dict:
    return {k: v.clone() for k, v in wrapper.frozen_state_dict().items()}


def assert_frozen_unchanged(wrapper, snapshot: dict):
    state = wrapper.frozen_state_dict()
    assert state.keys() == snapshot.keys()
    changed = [k for k, v in state.items() if not torch.equal(v, snapshot[k])]
    assert not changed, f'frozen tensors changed: {changed[:5]}'


def wrapped_and_bare(cfg, method=ProTune, seed=0, **kwargs):
    """A wrapper and the bare backbone with the same (randomised) frozen weights."""
    torch.manual_seed(seed)
    wrapper = method(backbone=cfg, **kwargs)
    randomise(wrapper.backbone, seed)
    bare = MODELS.build(cfg)
    bare.load_state_dict(wrapper.backbone.state_dict())
    bare.eval()  # (mmdet's ResNet.train returns None: no chaining)
    return wrapper.eval(), bare


def set_scales(wrapper, value):
    with torch.no_grad():
        for block in wrapper.prompts.values():
            block.scale.fill_(value)


# -- identity at init, hooks on the path ---------------------------------------------------
@pytest.mark.parametrize('place', ['input', 'output'])
@pytest.mark.parametrize('name', list(BACKBONES))
def test_protune_starts_as_the_bare_backbone(name, place):
    wrapper, bare = wrapped_and_bare(BACKBONES[name], place=place)
    x = image()
    with torch.no_grad():
        ref = bare(x)
        assert max_diff(wrapper(x), ref) <= 1e-6
        # The prompt blocks are on the path: a non-zero scale changes every output.
        set_scales(wrapper, 1.0)
        moved = wrapper(x)
    for a, b in zip(moved, ref):
        assert a.shape == b.shape and (a - b).abs().max() > 1e-4


def test_frozen_wrapper_is_the_bare_backbone_with_no_trainable_parameter():
    cfg = BACKBONES['mmdet.ResNet']
    wrapper, bare = wrapped_and_bare(cfg, method=Frozen)
    assert len(wrapper.prompts) == 0
    assert not any(p.requires_grad for p in wrapper.parameters())
    x = image()
    with torch.no_grad():
        assert max_diff(wrapper(x), bare(x)) == 0


@pytest.mark.parametrize('name', list(BACKBONES))
def test_inner_backbone_is_frozen_right_after_init(name):
    wrapper = ProTune(backbone=BACKBONES[name])
    assert all(not p.requires_grad for p in wrapper.backbone.parameters())
    prompts = list(wrapper.prompts.parameters())
    assert prompts and all(p.requires_grad for p in prompts)
    # The key convention prompt packs rely on.
    for key in wrapper.state_dict():
        assert key.startswith(('backbone.', 'prompts.')), key
    assert set(wrapper.frozen_state_dict()) == set(wrapper.backbone.state_dict())
    assert wrapper.method == 'protune'
    assert wrapper.method_config()['stages'] == list(range(len(wrapper.prompts)))


def test_train_mode_keeps_the_inner_backbone_in_eval():
    wrapper = ProTune(backbone=BACKBONES['mmdet.ResNet'])
    model = nn.Sequential(wrapper)
    model.train()
    assert not any(m.training for m in wrapper.backbone.modules())
    assert all(m.training for m in wrapper.prompts.modules())
    assert wrapper.training


# -- a real detector: loss, backward, AdamW ------------------------------------------
def det_batch(n=2, size=64, with_masks=False):
    import numpy as np
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData

    g = torch.Generator().manual_seed(0)
    boxes = torch.tensor([[4., 6., 40., 50.], [20., 10., 60., 34.]])
    inputs, samples = [], []
    for i in range(n):
        inputs.append(torch.randint(0, 256, (3, size, size), generator=g,
                                    dtype=torch.uint8))
        sample = DetDataSample(metainfo=dict(
            img_id=i, img_shape=(size, size), ori_shape=(size, size),
            scale_factor=(1.0, 1.0)))
        gt = InstanceData(bboxes=boxes.clone(), labels=torch.tensor([0, 1]))
        if with_masks:
            masks = np.zeros((len(boxes), size, size), dtype=np.uint8)
            for j, (x1, y1, x2, y2) in enumerate(boxes.int().tolist()):
                masks[j, y1:y2, x1:x2] = 1
            gt.masks = BitmapMasks(masks, size, size)
        sample.gt_instances = gt
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def tiny_retinanet(backbone: dict) -> dict:
    """A stock mmdet RetinaNet (FPN + RetinaHead) made small."""
    return dict(
        type='RetinaNet',
        data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], bgr_to_rgb=True,
                               pad_size_divisor=32),
        backbone=backbone,
        neck=dict(type='FPN', in_channels=R18_CHANNELS, out_channels=32, start_level=1,
                  add_extra_convs='on_input', num_outs=5),
        bbox_head=dict(
            type='RetinaHead', num_classes=3, in_channels=32, stacked_convs=1,
            feat_channels=32,
            anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4,
                                  scales_per_octave=3, ratios=[0.5, 1.0, 2.0],
                                  strides=[8, 16, 32, 64, 128]),
            bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0] * 4,
                            target_stds=[1.0] * 4),
            loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                          loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
        train_cfg=dict(
            assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.4,
                          min_pos_iou=0, ignore_iof_thr=-1),
            sampler=dict(type='PseudoSampler'), allowed_border=-1, pos_weight=-1,
            debug=False),
        test_cfg=dict(nms_pre=100, min_bbox_size=0, score_thr=0.05,
                      nms=dict(type='nms', iou_threshold=0.5), max_per_img=10))


@pytest.fixture(scope='module')
def retinanet():
    from mmdet.registry import MODELS as DET_MODELS
    backbone = dict(type='protune_mm.ProTune',
                    backbone=dict(type='ResNet', depth=18, out_indices=(0, 1, 2, 3),
                                  norm_cfg=dict(type='BN', requires_grad=True),
                                  norm_eval=True, frozen_stages=1))
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = DET_MODELS.build(tiny_retinanet(backbone))
        model.init_weights()
    randomise(model.backbone.backbone)
    return model


def loss_backward(model, batch):
    model.train()
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode='loss')
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss)
    loss.backward()
    return loss


def test_detector_training_moves_prompts_only(retinanet):
    model = copy.deepcopy(retinanet)
    wrapper = model.backbone
    assert isinstance(wrapper, ProTune)
    snapshot = frozen_snapshot(wrapper)
    assert any(k.endswith('num_batches_tracked') for k in snapshot)
    prompts_before = {n: p.detach().clone() for n, p in wrapper.prompts.named_parameters()}
    # All parameters go to AdamW, as mmengine's optimizer constructor does; the
    # frozen ones never get a gradient, so AdamW (weight decay included) skips them.
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.05)
    batch = det_batch()
    for step in range(2):
        optimizer.zero_grad()
        loss_backward(model, batch)
        assert not any(m.training for m in wrapper.backbone.modules())
        assert all(m.training for m in wrapper.prompts.modules())
        assert all(p.grad is None for p in wrapper.backbone.parameters())
        grads = {n: p.grad for n, p in wrapper.prompts.named_parameters()}
        if step == 0:
            # scale starts at 0, so at first only the scales get a gradient.
            assert all(g is not None and g.abs().sum() > 0
                       for n, g in grads.items() if n.endswith('scale'))
        else:
            # Once the scales moved, every prompt parameter gets one.
            dead = [n for n, g in grads.items() if g is None or g.abs().sum() == 0]
            assert not dead, f'prompt parameters without gradient: {dead}'
        optimizer.step()
        assert_frozen_unchanged(wrapper, snapshot)
    moved = [n for n, p in wrapper.prompts.named_parameters()
             if not torch.equal(p, prompts_before[n])]
    assert len(moved) == len(prompts_before)


def test_parameter_report_splits_a_detector(retinanet):
    report = parameter_report(retinanet)

    def count(module, trainable=False):
        return sum(p.numel() for p in module.parameters()
                   if p.requires_grad or not trainable)

    wrapper = retinanet.backbone
    assert report['frozen backbone'] == dict(total=count(wrapper.backbone), trainable=0)
    n_prompts = count(wrapper.prompts)
    assert n_prompts > 0 and report['prompts'] == dict(total=n_prompts,
                                                       trainable=n_prompts)
    assert report['neck']['total'] == count(retinanet.neck) > 0
    assert report['heads']['total'] == count(retinanet.bbox_head) > 0
    assert 'backbone (trainable)' not in report
    assert sum(r['total'] for r in report.values()) == count(retinanet)


def test_prompt_budget_on_resnet50():
    wrapper = ProTune(backbone=dict(type='mmdet.ResNet', depth=50))
    backbone = sum(p.numel() for p in wrapper.backbone.parameters())
    prompts = sum(p.numel() for p in wrapper.prompts.parameters())
    ratio = prompts / backbone
    print(f'ProTune defaults on ResNet-50: {prompts:,} prompt parameters = '
          f'{100 * ratio:.2f}% of {backbone:,} backbone parameters')
    assert ratio <= 0.05


# -- deep copy (EMA, tools) -----------------------------------------------------------
@pytest.mark.parametrize('name', ['mmdet.ResNet', 'mmdet.SwinTransformer', 'TimmViT'])
def test_deepcopy_hooks_use_the_copys_prompts(name):
    wrapper, bare = wrapped_and_bare(BACKBONES[name])
    clone = copy.deepcopy(wrapper)
    set_scales(clone, 1.0)
    x = image()
    with torch.no_grad():
        ref = bare(x)
        assert max_diff(wrapper(x), ref) <= 1e-6  # the original is untouched
        assert max_diff(clone(x), ref) > 1e-4
        set_scales(wrapper, 1.0)
        set_scales(clone, 0.0)
        assert max_diff(clone(x), ref) <= 1e-6
        assert max_diff(wrapper(x), ref) > 1e-4


# -- pretrained weights through the inner init_cfg ------------------------------------
def _torchvision_resnet18_file(tmp_path):
    import torchvision
    torch.manual_seed(3)
    state = torchvision.models.resnet18().state_dict()
    for k, v in state.items():  # statistics that differ from any init
        if k.endswith(('running_mean', 'running_var')):
            v.copy_(torch.rand(v.shape) + 0.5)
        if k.endswith('num_batches_tracked'):
            v.fill_(1234)
    path = tmp_path / 'resnet18_torchvision.pth'
    torch.save(state, path)
    return str(path), state


@pytest.mark.parametrize('how', ['inner_init_cfg', 'pretrained_arg'])
def test_pretrained_resnet_loads_into_the_frozen_backbone(tmp_path, how):
    path, state = _torchvision_resnet18_file(tmp_path)
    inner = dict(type='mmdet.ResNet', depth=18)
    if how == 'inner_init_cfg':
        wrapper = ProTune(backbone=dict(inner, init_cfg=dict(type='Pretrained',
                                                             checkpoint=path)))
    else:
        wrapper = ProTune(backbone=inner, pretrained=path)
    before_prompts = {k: v.clone() for k, v in wrapper.prompts.state_dict().items()}
    wrapper.init_weights()
    frozen = wrapper.frozen_state_dict()
    assert set(frozen) == set(state) - {'fc.weight', 'fc.bias'}
    for k, v in frozen.items():
        assert torch.equal(v, state[k]), k
    assert all(not p.requires_grad for p in wrapper.backbone.parameters())
    for k, v in wrapper.prompts.state_dict().items():
        assert torch.equal(v, before_prompts[k]), k


def test_pretrained_arg_conflicting_with_inner_init_cfg_is_refused():
    with pytest.raises(ValueError, match='pretrained'):
        ProTune(backbone=dict(type='mmdet.ResNet', depth=18,
                              init_cfg=dict(type='Pretrained', checkpoint='a.pth')),
                pretrained='b.pth')


def test_state_dict_without_frozen_keys_loads_and_keeps_the_backbone():
    wrapper = ProTune(backbone=BACKBONES['mmdet.ResNet'])
    other = ProTune(backbone=BACKBONES['mmdet.ResNet'])
    set_scales(other, 0.5)
    frozen = frozen_snapshot(wrapper)
    prompts_only = {f'prompts.{k}': v for k, v in other.prompts.state_dict().items()}
    wrapper.load_state_dict(prompts_only, strict=True)
    assert_frozen_unchanged(wrapper, frozen)
    for k, v in other.prompts.state_dict().items():
        assert torch.equal(wrapper.prompts.state_dict()[k], v)


# -- registry scopes ---------------------------------------------------------------------
@pytest.fixture
def no_default_scope(monkeypatch):
    """No global default scope, whatever earlier tests (runners) left behind."""
    from collections import OrderedDict
    monkeypatch.setattr(DefaultScope, '_instance_dict', OrderedDict())


@pytest.mark.parametrize('scope, inner', [
    ('mmdet', 'ResNet'), ('mmseg', 'ResNet'), (None, 'mmdet.ResNet'),
    ('mmseg', 'mmdet.ResNet'), ('mmdet', 'mmseg.ResNetV1c')])
def test_inner_backbone_is_built_in_the_callers_scope(scope, inner, no_default_scope):
    expected = {'ResNet': f'{scope}.models.backbones.resnet',
                'mmdet.ResNet': 'mmdet.models.backbones.resnet',
                'mmseg.ResNetV1c': 'mmseg.models.backbones.resnet'}[inner]
    cfg = dict(type='protune_mm.ProTune', backbone=dict(type=inner, depth=18))
    with DefaultScope.overwrite_default_scope(scope):
        registry = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS \
            if scope else MODELS
        wrapper = registry.build(cfg)
    assert isinstance(wrapper, ProTune)
    assert type(wrapper.backbone).__module__ == expected
    assert type(wrapper.backbone).__name__ == inner.split('.')[-1]


def test_unscoped_type_without_default_scope_names_the_fix(no_default_scope):
    with pytest.raises(KeyError, match="default_scope"):
        ProTune(backbone=dict(type='ResNet', depth=18))


# -- bad configs --------------------------------------------------------------------------
R18 = BACKBONES['mmdet.ResNet']


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(stages=[4]), ValueError, r'stages.*unknown stage index \[4\].*\[0, 3\]'),
    (dict(stages=[-1]), ValueError, r'stages.*\[0, 3\]'),
    (dict(stages=[]), ValueError, r'stages is empty.*\[0, 3\]'),
    (dict(stages=2), TypeError, r'stages must be a list of ints'),
    (dict(stages=['layer1']), TypeError, r'stages must be a list of ints'),
    (dict(hidden_ratio=0), ValueError, r'hidden_ratio must be a number > 0'),
    (dict(hidden_ratio=-0.5), ValueError, r'hidden_ratio must be a number > 0'),
    (dict(groups=0), ValueError, r'groups must be a positive int'),
    (dict(groups=-4), ValueError, r'groups must be a positive int'),
    (dict(groups=3), ValueError, r'groups=3 must divide the width 64'),
    (dict(kernel_size=4), ValueError, r'kernel_size must be odd'),
    (dict(kernel_size=0), ValueError, r'kernel_size must be a positive int'),
    (dict(se_ratio=0), ValueError, r'se_ratio must be a positive int'),
    (dict(place='middle'), ValueError, r"place must be 'input' or 'output'"),
    (dict(scale='vector'), ValueError, r"scale must be 'channel' or 'scalar'"),
    (dict(se_act='gelu'), ValueError, r"se_act must be one of \['relu', 'silu'\]"),
])
def test_bad_protune_configs_name_the_field(kwargs, error, match):
    with pytest.raises(error, match=match):
        ProTune(backbone=R18, **kwargs)


def test_squeeze_excite_gate_learns_where_a_relu_gate_starts_dead():
    """mmdet's Swin-T (the backbone of 64 stock configs) at seed 0: every ReLU unit
    of stage 0's squeeze-excite starts negative, so that gate never learns; the
    SiLU default has a gradient everywhere."""
    pytest.importorskip('mmdet')
    from protune_mm.check import check_method
    swin = dict(type='mmdet.SwinTransformer', embed_dims=96, depths=[2, 2, 6, 2],
                num_heads=[3, 6, 12, 24], window_size=7, out_indices=(1, 2, 3))
    relu = check_method(dict(type='protune_mm.ProTune', backbone=swin, se_act='relu'),
                        (1, 3, 64, 64))
    assert not relu.ok and 'prompts.0.body.3.reduce.weight (zero gradient)' in \
        relu.failures[0]
    assert check_method(dict(type='protune_mm.ProTune', backbone=swin),
                        (1, 3, 64, 64)).ok


class StemOnly(nn.Module):
    """A backbone no adapter describes."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 2, 1)

    def forward(self, x):
        return (self.stem(x), )


def test_unsupported_backbone_lists_the_supported_ones():
    backbone, name = dict(type='protune_mm.StemOnly'), 'StemOnly'
    if 'StemOnly' not in MODELS.module_dict:
        MODELS.register_module(module=StemOnly)
    with pytest.raises(TypeError, match=rf'{name}: name its stage modules .*'
                                        r'register a BackboneAdapter.*'
                                        r'registered: .*ResNet.*SwinTransformer.*TimmViT'):
        ProTune(backbone=backbone)
    # Frozen needs no stage description: any backbone works.
    assert not any(p.requires_grad for p in Frozen(backbone=backbone).parameters())


def test_bad_backbone_argument_is_refused():
    with pytest.raises(TypeError, match="backbone must be a config dict"):
        ProTune(backbone='ResNet')


@pytest.mark.parametrize('kernel_size', [3, 5])
def test_depthwise_conv_equals_the_stock_conv(kernel_size):
    # ProTune's depthwise conv has its own weight gradient on CPU: outputs and
    # every gradient must be those of nn.Conv2d with the same tensors.
    from protune_mm.ops.depthwise import DepthwiseConv2d
    torch.manual_seed(0)
    fast = DepthwiseConv2d(6, kernel_size)
    stock = nn.Conv2d(6, 6, kernel_size, padding=kernel_size // 2, groups=6)
    stock.load_state_dict(fast.state_dict())
    assert list(fast.state_dict()) == ['weight', 'bias']
    x = torch.randn(3, 6, 11, 9)
    grads = []
    for conv in (fast, stock):
        xi = x.clone().requires_grad_(True)
        out = conv(xi)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads.append((out.detach(), xi.grad, conv.weight.grad, conv.bias.grad))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_default_place_follows_the_family(tmp_path):
    """place=None takes the adapter's protune_place: the stage output on a plain
    ViT, the input on ResNet and on named stage modules; the resolved place is
    recorded, so a pack or checkpoint of a ViT prompted at its inputs is refused
    by a default ViT (naming the option) and taken by one built with
    place='input'."""
    from protune_mm.checkpoint import pack as pp
    resnet, vit = ProTune(backbone=R18), ProTune(backbone=TINY_VIT)
    assert resnet.place == resnet.method_config()['place'] == 'input'
    assert vit.place == vit.method_config()['place'] == 'output'
    assert ProTune(backbone=TINY_VIT, place='input').method_config()['place'] == 'input'
    named = ProTune(backbone=R18, stage_modules=['layer1', 'layer2'])
    assert named.method_config()['place'] == 'input'

    old = randomise(ProTune(backbone=TINY_VIT, place='input'), seed=3)
    path = str(tmp_path / 'vit_input.safetensors')
    pp.save_prompt_pack(pp.make_prompt_pack(old, 'prompts'), path)
    default = ProTune(backbone=TINY_VIT)
    default.backbone.load_state_dict(old.backbone.state_dict())  # same frozen weights
    before = {k: v.clone() for k, v in default.state_dict().items()}
    with pytest.raises(ValueError, match=r"place: pack 'input', model 'output'"):
        pp.load_prompt_pack(default, path)
    # A checkpoint (state dict) of it, same tensor shapes, is refused the same way.
    with pytest.raises(CheckpointError, match=r"place: checkpoint 'input', model 'output'"):
        default.load_state_dict(old.state_dict())
    assert all(torch.equal(v, before[k]) for k, v in default.state_dict().items())
    explicit = ProTune(backbone=TINY_VIT, place='input')
    explicit.backbone.load_state_dict(old.backbone.state_dict())
    assert pp.load_prompt_pack(explicit, path).frozen_match
    explicit.load_state_dict(old.state_dict())


def test_vit_default_place_keeps_the_contract_and_round_trips(tmp_path):
    """The ViT's default (stage output): identity at init, gradients to every
    prompt, frozen tensors unchanged (check_method), and a pack of it reproduces
    the model's outputs on another default ViT with the same frozen weights."""
    from protune_mm.check import check_method
    from protune_mm.checkpoint import pack as pp
    result = check_method(dict(type='protune_mm.ProTune', backbone=TINY_VIT))
    assert result.ok, result.failures
    a = randomise(ProTune(backbone=TINY_VIT), seed=4)
    set_scales(a, 0.5)  # trained-looking prompts: the pack must carry them
    path = str(tmp_path / 'vit.safetensors')
    pp.save_prompt_pack(pp.make_prompt_pack(a, 'prompts'), path)
    b = ProTune(backbone=TINY_VIT)
    b.load_state_dict({k: v for k, v in a.state_dict().items() if 'prompts' not in k},
                      strict=False)
    x = image()
    a.eval(), b.eval()
    assert max_diff(a(x), b(x)) > 0
    assert pp.load_prompt_pack(b, path).frozen_match
    assert max_diff(a(x), b(x)) == 0


def test_small_checkpoint_keeps_the_method_record_through_save_and_load(tmp_path):
    """strip_frozen (small checkpoints) adds the frozen identity to the method's
    record, not in place of it; both survive torch.save / weights_only load, and
    the record refuses a ViT built with the other place."""
    from protune_mm.checkpoint.policy import META_KEY, strip_frozen
    old = randomise(ProTune(backbone=TINY_VIT, place='input'), seed=5)
    state = old.state_dict()
    strip_frozen(state, old)
    path = str(tmp_path / 'small.pth')
    torch.save(state, path)
    loaded = torch.load(path, weights_only=True)
    info = loaded._metadata[''][META_KEY]
    assert info['method'] == 'protune' and info['method_config']['place'] == 'input'
    assert info['frozen_sha256']
    default = ProTune(backbone=TINY_VIT)
    default.backbone.load_state_dict(old.backbone.state_dict())
    with pytest.raises(CheckpointError, match=r"place: checkpoint 'input'"):
        default.load_state_dict(loaded, strict=False)
    same = ProTune(backbone=TINY_VIT, place='input')
    same.backbone.load_state_dict(old.backbone.state_dict())
    same.load_state_dict(loaded, strict=False)
    assert all(torch.equal(a, b) for a, b in zip(same.prompts.parameters(),
                                                   old.prompts.parameters()))


def test_checkpoint_without_method_record_loads_with_a_warning(monkeypatch):
    """A state dict saved before methods recorded their config cannot be checked:
    it loads, and the log says so with the model's config (prompt-free state
    dicts, such as stock checkpoints, load silently as before)."""
    from protune_mm.checkpoint import policy
    logged = []
    monkeypatch.setattr(policy, 'print_log',
                        lambda msg, **kw: logged.append((msg, kw.get('level'))))
    old = ProTune(backbone=TINY_VIT, place='input')
    state = old.state_dict()
    state._metadata[''].pop(policy.META_KEY)
    ProTune(backbone=TINY_VIT).load_state_dict(state)
    warned = [m for m, level in logged if level == logging.WARNING]
    assert len(warned) == 1 and 'records no method config' in warned[0]
    assert "'place': 'output'" in warned[0]
    logged.clear()
    inner = {k: v for k, v in state.items() if not k.startswith('prompts.')}
    ProTune(backbone=TINY_VIT).load_state_dict(inner, strict=False)
    assert not [m for m, level in logged if level == logging.WARNING]
