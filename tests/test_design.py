"""The open design (issue 12): adapters, the method contract, frozen as a recorded
set, the one checkpoint policy, and the silent failures it fixed (numbered as in
the issue)."""
import copy
import glob
import os.path as osp
import re

import numpy as np
import pytest
import torch
import torch.nn as nn

pytest.importorskip('mmdet')
pytest.importorskip('mmseg')

from mmengine.config import Config  # noqa: E402
from mmengine.hooks import EMAHook  # noqa: E402
from mmengine.runner.checkpoint import load_checkpoint  # noqa: E402

import protune_mm  # noqa: E402
from protune_mm import (MODELS, Frozen, PromptCheckpointHook, PromptMethod,  # noqa: E402
                        ProTune, load_prompt_pack, parameter_report)
from protune_mm.adapters import BackboneAdapter, Stage, register_adapter  # noqa: E402
from protune_mm.checkpoint import CheckpointError, frozen_identity  # noqa: E402
from protune_mm.checkpoint import pack as pp  # noqa: E402
from protune_mm.checkpoint.policy import strip_frozen  # noqa: E402
from protune_mm.ops.frozen_ops import frozen_ops_enabled  # noqa: E402
from test_prompt_pack import (REPO, build, initialised_pack, make_runner,  # noqa: E402
                              perturb, predict, quick_runner, resnet, retinanet_cfg,
                              same, save_pretrained, snapshot, toy_net, unchanged)
from test_swap_configs import stock_config  # noqa: E402

assert quick_runner  # a fixture, used by name
R18 = dict(type='mmdet.ResNet', depth=18, init_cfg=None)
SWIN = dict(type='mmdet.SwinTransformer', embed_dims=16, depths=(1, 1, 1, 1),
            num_heads=(1, 1, 1, 1), window_size=2, init_cfg=None)
VIT = dict(type='protune_mm.TimmViT', model_name='vit_tiny_patch16_224',
           model_kwargs=dict(depth=4, embed_dim=32, num_heads=2))
# torch's MultiheadAttention inside: LoRA rebinds its forward rather than hooking.
MMSEG_VIT = dict(type='mmseg.VisionTransformer', img_size=64, patch_size=16, embed_dims=32,
                 num_layers=3, num_heads=2, out_indices=(1, 2))


def outputs(model, x):
    model.eval()  # (mmdet's ResNet.train() returns None: no chaining)
    with torch.no_grad():
        return [o.clone() for o in model(x)]


# -- the method contract ---------------------------------------------------------------
@pytest.mark.parametrize('cfg', [
    dict(type='protune_mm.ProTune', backbone=R18, place='output'),
    dict(type='protune_mm.ProTune', backbone=SWIN),
    dict(type='protune_mm.VPT', backbone=SWIN, num_tokens=2),
    dict(type='protune_mm.VPT', backbone=VIT, num_tokens=2),
    dict(type='protune_mm.VPT', backbone=R18, num_tokens=4),
    dict(type='protune_mm.VPT', backbone=dict(type='mmdet.MobileNetV2'), num_tokens=4),
    dict(type='protune_mm.LoRA', backbone=SWIN, targets=['qkv', 'proj', 'fc1', 'fc2']),
    dict(type='protune_mm.LoRA', backbone=VIT, targets=['qkv', 'fc2']),
    dict(type='protune_mm.AdaptFormer', backbone=SWIN, bottleneck=4),
    dict(type='protune_mm.AdaptFormer', backbone=VIT, bottleneck=4),
    dict(type='protune_mm.LoRA', backbone=MMSEG_VIT, targets=['qkv', 'proj', 'fc1', 'fc2']),
    dict(type='protune_mm.AdaptFormer', backbone=MMSEG_VIT, bottleneck=4),
], ids=['protune-r18', 'protune-swin', 'vpt-swin', 'vpt-vit', 'vpt-pad-r18',
        'vpt-pad-mobilenet', 'lora-swin', 'lora-vit', 'adaptformer-swin',
        'adaptformer-vit', 'lora-mmseg-vit', 'adaptformer-mmseg-vit'])
def test_disable_enable_remove_give_the_bare_backbone_back_exactly(cfg):
    torch.manual_seed(0)
    method = MODELS.build(cfg)
    bare = MODELS.build(copy.deepcopy(cfg['backbone']))
    bare.load_state_dict(method.backbone.state_dict())
    bare.requires_grad_(False)  # as the method's (torch MHA's fast path depends on it)
    with torch.no_grad():  # prompts that change the output
        for p in method.prompts.parameters():
            p.add_(0.5)
    x = torch.randn(2, 3, 64, 64)
    ref, prompted = outputs(bare, x), outputs(method, x)
    assert not same(prompted, ref)
    method.disable()
    assert same(outputs(method, x), ref)
    method.enable()
    assert same(outputs(method, x), prompted)
    method.remove()
    assert same(outputs(method, x), ref) and len(method.prompts) == 0
    for m in method.backbone.modules():
        assert not m._forward_pre_hooks and not m._forward_hooks
        assert 'forward' not in m.__dict__


def test_method_config_is_captured_and_resolved():
    a = ProTune(backbone=R18)
    b = ProTune(backbone=R18, stages=[3, 2, 1, 0], memory_efficient=False)
    assert a.method_config() == b.method_config()
    assert a.method_config() == dict(stages=[0, 1, 2, 3], place='input',
                                     hidden_ratio=0.5, kernel_size=5, groups=4,
                                     se_ratio=16, scale='channel', se_act='silu')
    assert Frozen(backbone=R18).method_config() == {}


class _ShiftTune(PromptMethod):
    """A test method whose trainable tensor lives inside the inner backbone's
    module tree (like BitFit or LoRA): a per-channel shift of layer4's output."""
    method = 'shift'

    def inject(self):
        layer = self.backbone.layer4
        layer.register_parameter('shift', nn.Parameter(torch.zeros(1, 512, 1, 1)))
        return [layer.register_forward_hook(lambda m, a, out: out + m.shift)]


def test_a_trainable_tensor_inside_the_backbone_is_trained_saved_exported_never_frozen(
        tmp_path):
    torch.manual_seed(0)
    method = _ShiftTune(backbone=dict(R18, out_indices=(3, )))
    key = 'backbone.layer4.shift'
    assert key not in method.frozen_keys and method.backbone.layer4.shift.requires_grad
    sha = frozen_identity(method)
    frozen = {k: v.clone() for k, v in method.frozen_state_dict().items()}
    assert 'layer4.shift' not in frozen

    # Trained: it gets a gradient and moves; the frozen set does not.
    optim = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=1)
    method.train()
    method(torch.randn(2, 3, 64, 64))[-1].mean().backward()
    optim.step()
    assert method.backbone.layer4.shift.abs().sum() > 0
    assert frozen_identity(method) == sha
    assert all(torch.equal(v, method.frozen_state_dict()[k]) for k, v in frozen.items())

    # Reported as the method's, not as frozen.
    report = parameter_report(method)
    assert report['prompts']['trainable'] == 512
    assert report['frozen backbone']['trainable'] == 0

    # Saved: a small checkpoint keeps it, drops exactly the frozen set.
    state = method.state_dict()
    strip_frozen(state, method)
    assert set(state) == {key}

    # Exported and reloaded into another instance.
    pack = pp.make_prompt_pack(method, 'prompts')
    assert set(pack.tensors) == {key} and pack.metadata['frozen_sha256'] == sha
    torch.manual_seed(0)
    other = _ShiftTune(backbone=dict(R18, out_indices=(3, )))
    load_prompt_pack(other, pack)
    assert torch.equal(other.backbone.layer4.shift, method.backbone.layer4.shift)


# -- adapters --------------------------------------------------------------------------
class TwoStageNet(nn.Module):
    """A user's own backbone, unknown to this package."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 2, 1)
        self.stage1 = nn.Sequential(nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU())
        self.stage2 = nn.Sequential(nn.Conv2d(16, 16, 3, 2, 1), nn.ReLU())

    def forward(self, x):
        a = self.stage1(self.stem(x))
        return (a, self.stage2(a))


def test_a_users_backbone_takes_protune_through_a_registered_adapter():
    @register_adapter(TwoStageNet)
    class TwoStageAdapter(BackboneAdapter):
        def stages(self):
            net = self.backbone
            return [Stage('stage1', net.stage1, net.stage1, 8, 16),
                    Stage('stage2', net.stage2, net.stage2, 16, 16)]

    if 'TwoStageNet' not in MODELS.module_dict:
        MODELS.register_module(module=TwoStageNet)
    torch.manual_seed(0)
    method = ProTune(backbone=dict(type='protune_mm.TwoStageNet'), groups=2)
    assert sorted(method.prompts) == ['0', '1']
    assert isinstance(method.adapter, TwoStageAdapter)
    x = torch.randn(1, 3, 32, 32)
    assert same(outputs(method, x), outputs(method.backbone, x))  # identity at init


class UndescribedNet(nn.Module):
    """A backbone no adapter describes."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 2, 1)

    def forward(self, x):
        return (self.stem(x), )


def test_a_backbone_without_adapter_still_takes_frozen_and_pad_prompts():
    if 'UndescribedNet' not in MODELS.module_dict:
        MODELS.register_module(module=UndescribedNet)
    net = dict(type='protune_mm.UndescribedNet')
    with pytest.raises(TypeError, match=r'name its stage modules .*register a '
                       'BackboneAdapter'):
        ProTune(backbone=net)
    vpt = MODELS.build(dict(type='protune_mm.VPT', backbone=net, num_tokens=4))
    assert vpt.mechanism.name == 'pad'
    x = torch.randn(1, 3, 64, 64)
    assert [o.shape for o in outputs(vpt, x)] == \
        [o.shape for o in outputs(vpt.backbone, x)]


# -- 1. EMA ------------------------------------------------------------------------------
def test_1_ema_checkpoints_drop_the_frozen_backbone_and_resume(tmp_path, quick_runner):
    pretrained = save_pretrained(tmp_path / 'r18.pth', seed=42)
    model = toy_net(pretrained)
    runner, _ = make_runner(tmp_path, model, hooks=[
        EMAHook(momentum=0.5), PromptCheckpointHook()])
    runner.train()
    ckpt = torch.load(osp.join(tmp_path, 'iter_2.pth'), map_location='cpu',
                      weights_only=True)
    for part, prefix in (('state_dict', ''), ('ema_state_dict', 'module.')):
        keys = list(ckpt[part])
        assert not any(k.startswith(prefix + 'backbone.backbone.') for k in keys), part
        assert prefix + 'head.weight' in keys
    ema = {k: v.clone() for k, v in ckpt['ema_state_dict'].items()}

    model2 = toy_net(pretrained)
    ema_hook = EMAHook(momentum=0.5)
    runner2, probe = make_runner(tmp_path / 'resume', model2, max_iters=3,
                                 hooks=[ema_hook, PromptCheckpointHook()],
                                 resume=True, load_from=osp.join(tmp_path, 'iter_2.pth'))
    runner2.train()
    assert probe.iters == [2]
    # The EMA weights went on from the saved ones (one more EMA step at 0.5:
    # new = (saved + current) / 2, so they are not the fresh model's weights).
    head = ema_hook.ema_model.state_dict()['module.head.weight']
    assert not torch.equal(head, ema['module.head.weight'])
    # The EMA copy's frozen backbone is the pretrained one, as the model's.
    for k, v in model2.backbone.backbone.state_dict().items():
        assert torch.equal(ema_hook.ema_model.module.backbone.backbone.state_dict()[k], v)


# -- 2. prompts-only pack alone ----------------------------------------------------------
def test_2_a_prompts_pack_alone_is_refused_and_loads_on_top_of_a_checkpoint(
        tmp_path, quick_runner):
    pretrained = save_pretrained(tmp_path / 'r18.pth', seed=42)
    source, prompts = initialised_pack(tmp_path, pretrained, 'prompts', seed=1)
    heads, task = initialised_pack(tmp_path, pretrained, 'task', seed=2)

    with pytest.raises(CheckpointError, match='prompts-only pack.*neck or heads.*'
                                              '--prompts PACK'):
        load_checkpoint(toy_net(pretrained), prompts)
    runner, _ = make_runner(tmp_path / 'alone', toy_net(pretrained), max_iters=1,
                            hooks=[PromptCheckpointHook()], load_from=prompts)
    with pytest.raises(CheckpointError, match='prompts-only pack'):
        runner.train()

    # tools/test.py CONFIG TASK --prompts PACK: the task's heads, the pack's prompts.
    cfg = Config(dict(custom_hooks=[]))
    protune_mm.engine.ensure_pack_hook(cfg, prompts=prompts)
    runner, probe = make_runner(tmp_path / 'on_top', toy_net(pretrained), max_iters=1,
                                hooks=[PromptCheckpointHook(prompts=prompts)],
                                load_from=task)
    runner.train()
    first = probe.first_state
    for k, v in heads.state_dict().items():
        expected = source.state_dict()[k] if k.startswith('backbone.prompts.') else v
        assert torch.equal(first[k], expected), k
    with pytest.raises(CheckpointError, match='not a prompts-only pack'):
        protune_mm.engine.ensure_pack_hook(Config(dict(custom_hooks=[])), prompts=task)


# -- 3. stock full checkpoints -----------------------------------------------------------
def test_3_a_stock_detector_checkpoint_loads_into_the_frozen_backbone(tmp_path):
    stock = build('mmdet', dict(retinanet_cfg(), backbone=resnet()), seed=3)
    path = str(tmp_path / 'stock.pth')
    torch.save(dict(meta={}, state_dict=stock.state_dict()), path)
    model = build('mmdet', retinanet_cfg(), seed=0)
    load_checkpoint(model, path)  # the prompts are not in it: stay at their init
    got = model.backbone.backbone.state_dict()
    for k, v in stock.backbone.state_dict().items():
        assert torch.equal(got[k], v), k
    assert torch.equal(model.bbox_head.retina_cls.weight, stock.bbox_head.retina_cls.weight)
    assert frozen_identity(model.backbone) == pp.state_identity(stock.backbone.state_dict())

    partial = stock.state_dict()
    del partial['backbone.layer4.1.conv2.weight']
    torch.save(dict(meta={}, state_dict=partial), path)
    target = build('mmdet', retinanet_cfg(), seed=0)
    snap = snapshot(target)
    with pytest.raises(CheckpointError, match=r'lacks 1 of .*layer4\.1\.conv2\.weight'):
        load_checkpoint(target, path)
    assert unchanged(target, snap)


# -- 4. what a pack is compared on ---------------------------------------------------------
@pytest.mark.parametrize('change', [
    dict(norm_cfg=dict(type='SyncBN', requires_grad=True)),
    dict(out_indices=(0, 1, 2, 3)), dict(type='mmdet.ResNet'),
    dict(with_cp=True, norm_eval=False),
], ids=['syncbn', 'out_indices', 'scoped-type', 'training-switches'])
def test_4_packs_ignore_what_changes_no_weight(change):
    source = perturb(build('mmdet', retinanet_cfg()), seed=1)
    pack = pp.make_prompt_pack(source, 'prompts')
    inner = dict(resnet(), **change)
    target = build('mmdet', retinanet_cfg(dict(type='protune_mm.ProTune',
                                               backbone=inner)))
    if change.get('norm_cfg'):  # SyncBN builds; loading is what is tested
        from mmengine.model import revert_sync_batchnorm
        target = revert_sync_batchnorm(target)
    load_prompt_pack(target, pack)
    for k, v in pack.tensors.items():
        assert torch.equal(target.state_dict()[k], v)


def test_4_vpt_dropout_is_not_compared():
    a = build('mmseg', dict(type='protune_mm.VPT', backbone=VIT, num_tokens=2))
    b = build('mmseg', dict(type='protune_mm.VPT', backbone=VIT, num_tokens=2,
                            dropout=0.0))
    load_prompt_pack(b, pp.make_prompt_pack(a, 'prompts'))


# -- 5. prompts that cannot reach an output ------------------------------------------------
def test_5_unreachable_prompts_are_not_created_or_are_refused():
    m = ProTune(backbone=dict(R18, out_indices=(0, 1)))
    assert sorted(m.prompts) == ['0', '1'] and len(m.skipped) == 2
    m = ProTune(backbone=dict(R18, out_indices=(0, 1)), place='output')
    assert sorted(m.prompts) == ['0', '1']
    with pytest.raises(ValueError, match=r'stages \[3\].*reaches no feature'):
        ProTune(backbone=dict(R18, out_indices=(0, 1, 2)), stages=[3], place='output')
    vit = dict(VIT, out_indices=(0, 1, 1, 1))
    v = MODELS.build(dict(type='protune_mm.VPT', backbone=vit, num_tokens=2))
    assert sorted(v.prompts) == ['block0', 'block1']
    assert 'no prompt at' in protune_mm.engine.format_report(
        parameter_report(v), protune_mm.engine.skipped_prompts(v))
    # Every prompt created gets a gradient.
    for model in (m, v):
        model.train()
        sum(o.sum() for o in model(torch.randn(1, 3, 64, 64))).backward()
        assert all(p.grad is not None for p in model.prompts.parameters())


# -- 6. weight-decay exemption of the configs ------------------------------------------------
def test_6_config_decay_exemptions_name_prompt_parameters_exactly():
    names = {n for n, _ in ProTune(backbone=R18).named_parameters()}
    names = {'backbone.' + n for n in names} | {'bbox_head.scales.0.scale', 'neck.scale'}

    def custom_keys(cfg):
        return set(cfg.optim_wrapper.get('paramwise_cfg', {}).get('custom_keys', {}))

    for path in glob.glob(osp.join(REPO, 'configs', '[ds]*', '*.py')):
        stock = re.search(r"_base_ = \[?'([a-z]+::[^']+)'", open(path).read()).group(1)
        # Keys of the stock config (Swin's norms, position tables) are its own.
        for key in custom_keys(Config.fromfile(path)) - custom_keys(stock_config(stock)):
            hits = [n for n in names if key in n]
            assert hits and all(h.startswith('backbone.prompts.') for h in hits), \
                (path, key, hits)


# -- 8. lean ops under torch.compile --------------------------------------------------------
def test_7_vpt_pad_prompts_surround_each_image_of_a_padded_batch():
    """A detector's batch of a 64x64 and a 40x48 image is padded to 64x64 by the
    data preprocessor; each image's prompt border goes around its own region
    (runner flows bind it through ImageRegionHook), not around the batch."""
    from types import SimpleNamespace

    from mmdet.structures import DetDataSample
    from test_vpt import prompt_frame
    p = 4
    model = build('mmdet', retinanet_cfg(dict(type='protune_mm.VPT', backbone=resnet(),
                                              num_tokens=p, pad_base=64)))
    protune_mm.ImageRegionHook().before_run(SimpleNamespace(model=model))
    vpt, seen = model.backbone, {}
    vpt.register_forward_pre_hook(lambda m, a: seen.setdefault('batch', a[0].clone()))
    vpt.backbone.conv1.register_forward_pre_hook(
        lambda m, a: seen.setdefault('canvas', a[0].clone()))
    shapes = [(64, 64), (40, 48)]
    g = torch.Generator().manual_seed(0)
    data = dict(inputs=[torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)
                        for h, w in shapes],
                data_samples=[DetDataSample(metainfo=dict(
                    img_shape=s, ori_shape=s, scale_factor=(1.0, 1.0))) for s in shapes])
    with torch.no_grad():  # test_step's path, up to the heads' outputs
        model(**model.data_preprocessor(data), mode='tensor')
    assert seen['batch'].shape == (2, 3, 64, 64)  # padded by the preprocessor
    assert torch.equal(seen['canvas'], prompt_frame(vpt, seen['batch'], shapes, p))
    # The second image's bottom border starts right below its 40 rows.
    assert not torch.equal(seen['canvas'], prompt_frame(vpt, seen['batch'],
                                                        [(64, 64)] * 2, p))


def test_8_lean_ops_compile_in_one_graph_with_eager_outputs_and_gradients():
    torch.manual_seed(0)
    model = Frozen(backbone=dict(R18, out_indices=(1, 2)))
    assert frozen_ops_enabled(model.backbone)
    x = torch.randn(1, 3, 64, 64)
    compiled = torch.compile(model, backend='aot_eager', fullgraph=True)
    results = []
    for fn in (model, compiled):
        xi = x.clone().requires_grad_(True)
        out = fn(xi)
        sum(o.square().sum() for o in out).backward()
        results.append(([o.detach() for o in out], xi.grad))
    for a, b in zip(results[0][0], results[1][0]):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(results[0][1], results[1][1])


# -- 9. lean ops on by default ----------------------------------------------------------------
def test_9_shipped_resnet_configs_get_lean_ops():
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'det', 'mask_rcnn_protune_r50.py'))
    backbone = dict(cfg.model.backbone)
    backbone['backbone'] = dict(backbone['backbone'], init_cfg=None, depth=18)
    method = build('mmdet', backbone)
    assert method.memory_efficient and frozen_ops_enabled(method.backbone)
    off = build('mmdet', dict(backbone, memory_efficient=False))
    assert not frozen_ops_enabled(off.backbone)


# -- 10. unreadable checkpoints -----------------------------------------------------------------
def test_10_an_unreadable_checkpoint_is_one_line_naming_the_file(tmp_path, capsys):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'protune_test_tool', osp.join(REPO, 'tools', 'test.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    good = str(tmp_path / 'good.pth')
    torch.save(dict(state_dict={'w': torch.zeros(1000)}), good)
    data = open(good, 'rb').read()
    config = osp.join(REPO, 'configs', 'det', 'retinanet_protune_r50.py')
    for name, blob in (('cut.pth', data[:len(data) // 2]), ('empty.pth', b''),
                       ('cut.safetensors', b'\x10\x00\x00\x00\x00\x00\x00\x00{}')):
        bad = tmp_path / name
        bad.write_bytes(blob)
        with pytest.raises(SystemExit) as e:
            tool.main([config, str(bad)])
        msg = str(e.value.code)
        assert msg.startswith('error: ') and str(bad) in msg and '\n' not in msg, msg


# -- 11. mmdet / mmseg inferencers ------------------------------------------------------------
def _inferencer_config(tmp_path, task, pretrained):
    if task == 'det':
        cfg = Config.fromfile(osp.join(REPO, 'configs', 'det', 'retinanet_protune_r50.py'))
        cfg.model.backbone.backbone.update(depth=18, init_cfg=dict(
            type='Pretrained', checkpoint=pretrained))
        cfg.model.neck.in_channels = [64, 128, 256, 512]
    else:
        cfg = Config.fromfile(osp.join(REPO, 'configs', 'seg',
                                       'upernet_protune_r50_ade20k.py'))
        cfg.model.backbone.backbone.update(
            type='ResNet', depth=18, norm_cfg=dict(type='BN'), init_cfg=dict(
                type='Pretrained', checkpoint=pretrained))
        cfg.model.decode_head.update(in_channels=[64, 128, 256, 512], channels=16,
                                     norm_cfg=dict(type='BN'))
        cfg.model.auxiliary_head.update(in_channels=256, channels=16,
                                        norm_cfg=dict(type='BN'))
    path = str(tmp_path / f'{task}_cfg.py')
    cfg.dump(path)
    return cfg, path


@pytest.mark.parametrize('task', ['det', 'seg'])
def test_11_inferencers_take_task_packs_with_the_identity_checked(tmp_path, task):
    if task == 'det':
        from mmdet.apis import DetInferencer as Inferencer
        scope = 'mmdet'
    else:
        from mmseg.apis import MMSegInferencer as Inferencer
        scope = 'mmseg'
    from mmdet.models.backbones import ResNet
    pretrained = save_pretrained(tmp_path / 'r18.pth', seed=42)
    cfg, path = _inferencer_config(tmp_path, task, pretrained)
    source = build(scope, cfg.model)
    source.init_weights()
    perturb(source, seed=1)
    pack = str(tmp_path / 'task.safetensors')
    pp.save_prompt_pack(pp.make_prompt_pack(source, 'task'), pack)

    inferencer = Inferencer(model=path, weights=pack, device='cpu')
    model = inferencer.model
    for k, v in source.state_dict().items():
        assert torch.equal(model.state_dict()[k].cpu(), v), k
    torch.manual_seed(42)
    expected = ResNet(depth=18, out_indices=(3, )).state_dict()['conv1.weight']
    assert torch.equal(model.backbone.backbone.conv1.weight.cpu(), expected)
    # It predicts (det: a dict of data samples; seg: the data sample itself).
    result = inferencer(np.zeros((64, 64, 3), np.uint8), return_datasamples=True)
    if task == 'det':
        assert len(result['predictions']) == 1
    else:
        assert result.pred_sem_seg.data.shape[-2:] == (64, 64)

    # Other pretrained weights than the pack was trained on: refused.
    save_pretrained(tmp_path / 'r18.pth', seed=7)
    with pytest.raises(CheckpointError, match='trained on other frozen weights'):
        Inferencer(model=path, weights=pack, device='cpu')


def test_predictions_are_those_of_the_source_model(tmp_path):
    """A pack loaded by load_checkpoint predicts as the model it came from."""
    source = perturb(build('mmdet', retinanet_cfg()), seed=1)
    pack = str(tmp_path / 'task.safetensors')
    pp.save_prompt_pack(pp.make_prompt_pack(source, 'task'), pack)
    model = build('mmdet', retinanet_cfg())
    load_checkpoint(model, pack)
    assert same(predict(model), predict(source))
