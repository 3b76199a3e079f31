"""Prompt packs (export, load, refuse, swap) and small checkpoints
(PromptCheckpointHook), on tiny randomly initialised models."""
import importlib
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

pytest.importorskip('mmdet')
pytest.importorskip('mmseg')

import protune_mm  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402
from protune_mm import ProTune, PromptCheckpointHook, load_prompt_pack  # noqa: E402
from protune_mm.checkpoint import pack as pp  # noqa: E402
from protune_mm.checkpoint.record import to_json  # noqa: E402
from protune_mm.engine import ensure_pack_hook  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CLASSES = ('cat', 'dog', 'bird')
MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


# -- tiny models ---------------------------------------------------------------------
def resnet(scope='mmdet', depth=18, **kw):
    cfg = dict(type='ResNet' if scope == 'mmdet' else 'ResNetV1c', depth=depth,
               num_stages=4, out_indices=(1, 2, 3), norm_cfg=dict(type='BN'),
               norm_eval=True, style='pytorch', init_cfg=None)
    cfg.update(kw)
    return cfg


def retinanet_cfg(wrapper=None):
    wrapper = wrapper or dict(type='protune_mm.ProTune', backbone=resnet())
    return dict(
        type='RetinaNet',
        data_preprocessor=dict(type='DetDataPreprocessor', mean=MEAN, std=STD,
                               bgr_to_rgb=True, pad_size_divisor=32),
        backbone=wrapper,
        neck=dict(type='FPN', in_channels=[128, 256, 512], out_channels=32,
                  start_level=0, add_extra_convs='on_input', num_outs=5),
        bbox_head=dict(
            type='RetinaHead', num_classes=len(CLASSES), in_channels=32,
            stacked_convs=1, feat_channels=32,
            anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4,
                                  scales_per_octave=3, ratios=[0.5, 1.0, 2.0],
                                  strides=[8, 16, 32, 64, 128]),
            bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.] * 4,
                            target_stds=[1.] * 4),
            loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25),
            loss_bbox=dict(type='L1Loss')),
        test_cfg=dict(nms_pre=100, min_bbox_size=0, score_thr=0.05,
                      nms=dict(type='nms', iou_threshold=0.5), max_per_img=10))


def fcn_cfg(wrapper, in_channels, in_index):
    return dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=MEAN, std=STD,
                               bgr_to_rgb=True),
        backbone=wrapper,
        decode_head=dict(type='FCNHead', in_channels=in_channels, in_index=in_index,
                         channels=16, num_convs=1, num_classes=len(CLASSES),
                         norm_cfg=dict(type='BN'),
                         loss_decode=dict(type='CrossEntropyLoss')),
        train_cfg=dict(), test_cfg=dict(mode='whole'))


TINY_VIT = dict(type='protune_mm.TimmViT', model_name='vit_tiny_patch16_224',
                model_kwargs=dict(depth=4, embed_dim=32, num_heads=2))
MODELS = {
    'det_retinanet_protune': ('mmdet', retinanet_cfg()),
    'seg_fcn_protune': ('mmseg', fcn_cfg(
        dict(type='protune_mm.ProTune', backbone=resnet('mmseg'), stages=[1, 2, 3]),
        in_channels=512, in_index=2)),
    'seg_fcn_vpt_vit': ('mmseg', fcn_cfg(
        dict(type='protune_mm.VPT', backbone=TINY_VIT, num_tokens=3, deep=True),
        in_channels=32, in_index=2)),
    'seg_fcn_lora_vit': ('mmseg', fcn_cfg(
        dict(type='protune_mm.LoRA', backbone=TINY_VIT, targets=['qkv', 'fc2']),
        in_channels=32, in_index=2)),
    'seg_fcn_adaptformer_vit': ('mmseg', fcn_cfg(
        dict(type='protune_mm.AdaptFormer', backbone=TINY_VIT, bottleneck=4),
        in_channels=32, in_index=2)),
}


def build(scope, cfg, seed=0):
    """Build in ``scope``; the same seed gives the same weights everywhere."""
    importlib.import_module(f'{scope}.models')
    registry = importlib.import_module(f'{scope}.registry').MODELS
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope(scope):
        model = registry.build(cfg)
    return model.eval()


def perturb(model, seed, only_prompts=False):
    """Make every trainable tensor (prompts, or prompts+neck+heads) non-trivial and
    seed-specific (ProTune's output scale starts at 0, i.e. inactive prompts)."""
    keys = set(pp.select_keys(dict(model.named_parameters()), model,
                              'prompts' if only_prompts else 'task'))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in keys:
                p.add_(torch.randn(p.shape, generator=g) * 0.1)
    return model


def inputs():
    g = torch.Generator().manual_seed(123)
    return torch.randn(2, 3, 64, 64, generator=g)


def predict(model):
    """Raw head outputs (mode='tensor'), flattened: every score/box/logit."""
    with torch.no_grad():
        out = model(inputs(), mode='tensor')
    flat = []

    def walk(x):
        if isinstance(x, torch.Tensor):
            flat.append(x)
        else:
            for y in x:
                walk(y)
    walk(out)
    return flat


def same(a, b):
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def assert_same(a, b):
    """Bit-identical tensors (sequences or dicts of them); a failure names the
    element and the largest difference."""
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def unchanged(model, snap):
    state = model.state_dict()
    return state.keys() == snap.keys() and all(torch.equal(state[k], snap[k])
                                               for k in snap)


def save_checkpoint(model, path, cfg_text=None):
    """A checkpoint as mmengine's runner writes it."""
    meta = dict(dataset_meta=dict(classes=CLASSES), epoch=1, iter=10)
    if cfg_text is not None:
        meta['cfg'] = cfg_text
    torch.save(dict(meta=meta, state_dict=model.state_dict()), str(path))
    return str(path)


# -- round trip ----------------------------------------------------------------------
@pytest.mark.parametrize('kind', ['task', 'prompts'])
@pytest.mark.parametrize('name', sorted(MODELS))
def test_export_load_round_trip(tmp_path, name, kind):
    scope, cfg = MODELS[name]
    model_a = perturb(build(scope, cfg), seed=1)
    expected = predict(model_a)
    ckpt = save_checkpoint(model_a, tmp_path / 'a.pth')

    # The exporting model only gives the structure: another seed, other weights.
    pack = pp.export_prompt_pack(build(scope, cfg, seed=7), ckpt,
                                 str(tmp_path / 'a.safetensors'), kind=kind)
    assert protune_mm.is_prompt_pack(pack.path) and not protune_mm.is_prompt_pack(ckpt)

    # B: same frozen backbone (same build seed), other prompts; for a task pack
    # other neck/heads too, for a prompts pack A's (heads shared between tasks).
    if kind == 'task':
        model_b = perturb(build(scope, cfg), seed=2)
    else:
        model_b = perturb(perturb(build(scope, cfg), seed=1), seed=3, only_prompts=True)
    before = snapshot(model_b)
    assert not same(predict(model_b), expected)

    result = load_prompt_pack(model_b, pack.path)
    assert_same(predict(model_b), expected)
    assert result.kind == kind and result.frozen_match
    assert result.metadata['classes'] == list(CLASSES)
    prefix, wrapper = pp.the_wrapper(model_b)
    state, a_state = model_b.state_dict(), model_a.state_dict()
    prompt_keys = set(pp.select_keys(state, model_b, 'prompts'))
    assert set(result.keys) == set(pp.select_keys(state, model_b, kind))
    for k in state:
        if k in result.keys:
            assert torch.equal(state[k], a_state[k]), k
        else:  # frozen backbone (and neck/heads of a prompts pack) untouched
            assert torch.equal(state[k], before[k]), k
    assert prompt_keys and prompt_keys <= set(result.keys)

    meta = result.metadata
    assert meta['method'] == wrapper.method
    assert meta['method_config'] == json.loads(to_json(wrapper.method_config()))
    assert meta['frozen_sha256'] == pp.frozen_identity(wrapper)
    assert meta['prefix'] == 'backbone' and meta['protune_mm_version'] == \
        protune_mm.__version__


def test_mask_rcnn_r50_pack_sizes(tmp_path):
    cfg_file = tmp_path / 'mask_rcnn.py'
    cfg_file.write_text("_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'\n")
    cfg = Config.fromfile(str(cfg_file))
    inner = dict(cfg.model.backbone, init_cfg=None)
    cfg.model.backbone = dict(type='protune_mm.ProTune', backbone=inner)
    model = build('mmdet', cfg.model)
    full = save_checkpoint(model, tmp_path / 'full.pth')
    expected = pp.pack_nbytes(model)
    sizes = {}
    for kind in pp.PACK_KINDS:
        pack = pp.export_prompt_pack(model, full, str(tmp_path / f'{kind}.safetensors'),
                                     kind=kind)
        sizes[kind] = osp.getsize(pack.path)
        # file = tensor bytes (what param_report predicts) + a small header
        assert 0 < sizes[kind] - expected[kind] < 256 * 1024
        assert not [k for k in pack.tensors if k.startswith('backbone.backbone.')]
    full_size = osp.getsize(full)
    assert sizes['prompts'] < 0.05 * full_size, (sizes, full_size)
    assert sizes['prompts'] < sizes['task'] < full_size
    assert pack.tensors.keys() == set(
        k for k in model.state_dict() if not k.startswith('backbone.backbone.'))


# -- refusals ------------------------------------------------------------------------
@pytest.fixture(scope='module')
def protune_pack(tmp_path_factory):
    model = perturb(build('mmdet', retinanet_cfg()), seed=1)
    path = str(tmp_path_factory.mktemp('packs') / 'protune.safetensors')
    pp.save_prompt_pack(pp.make_prompt_pack(model, 'task'), path)
    return path


def protune_r(depth=18, stages=None, **kw):
    return dict(type='protune_mm.ProTune', backbone=resnet(depth=depth, **kw),
                stages=stages)


@pytest.mark.parametrize('wrapper, words', [
    (dict(type='protune_mm.VPT', backbone=resnet(), num_tokens=4, deep=False),
     ['wrong method', "'protune'", "'vpt'"]),
    # Same prompt shapes on a deeper ResNet: only the frozen weights differ.
    (protune_r(depth=34), ['trained on other frozen weights']),
    (protune_r(stages=[1, 2, 3]),
     ['protune config differs', 'stages', 'backbone.prompts.0.']),
    (protune_r(base_channels=32),
     ['shape mismatch', 'backbone.prompts.0.']),
], ids=['method', 'depth', 'stages', 'widths'])
def test_refuses_other_model(protune_pack, wrapper, words):
    neck_in = [64, 128, 256] if wrapper['backbone'].get('base_channels') == 32 \
        else [128, 256, 512]
    cfg = retinanet_cfg(wrapper)
    cfg['neck']['in_channels'] = neck_in
    model = build('mmdet', cfg)
    snap = snapshot(model)
    with pytest.raises(ValueError) as e:
        load_prompt_pack(model, protune_pack)
    msg = str(e.value)
    assert protune_pack in msg
    for word in words:
        assert word in msg, msg
    assert unchanged(model, snap)


def test_frozen_identity_mismatch(protune_pack):
    model = build('mmdet', retinanet_cfg(), seed=5)  # other frozen weights
    snap = snapshot(model)
    with pytest.raises(ValueError, match='trained on other frozen weights') as e:
        load_prompt_pack(model, protune_pack)
    assert protune_pack in str(e.value) and 'allow_frozen_mismatch' in str(e.value)
    assert unchanged(model, snap)

    result = load_prompt_pack(model, protune_pack, allow_frozen_mismatch=True)
    assert not result.frozen_match
    pack = pp.read_prompt_pack(protune_pack)
    state = model.state_dict()
    assert_same({k: state[k] for k in pack.tensors}, dict(pack.tensors))
    assert all(torch.equal(state[k], snap[k]) for k in state
               if k.startswith('backbone.backbone.'))


def test_refuses_broken_files(protune_pack, tmp_path):
    model = build('mmdet', retinanet_cfg())
    snap = snapshot(model)
    data = open(protune_pack, 'rb').read()
    cut = tmp_path / 'cut.safetensors'
    cut.write_bytes(data[:len(data) // 2])
    garbage = tmp_path / 'garbage.safetensors'
    garbage.write_bytes(os.urandom(4096))
    from safetensors.torch import save_file
    plain = str(tmp_path / 'plain.safetensors')
    save_file({'w': torch.zeros(2)}, plain)
    for path, words in ((str(cut), 'truncated'), (str(garbage), 'truncated'),
                        (plain, 'not a protune_mm prompt pack')):
        with pytest.raises(ValueError) as e:
            load_prompt_pack(model, path)
        assert path in str(e.value) and words in str(e.value), str(e.value)
        assert unchanged(model, snap)
    # Whole-model loaders name them the same way, in one line.
    from mmengine.runner.checkpoint import load_checkpoint
    for path in (str(cut), str(garbage)):
        with pytest.raises(ValueError, match='truncated') as e:
            load_checkpoint(model, path)
        assert path in str(e.value) and '\n' not in str(e.value)
    assert unchanged(model, snap)
    # A cut file is not a readable safetensors file, so not a pack either.
    assert not protune_mm.is_prompt_pack(str(cut))
    assert not protune_mm.is_prompt_pack(str(garbage))
    assert not protune_mm.is_prompt_pack(plain)


def test_atomic_write(tmp_path, monkeypatch):
    import safetensors.torch
    model = perturb(build('mmdet', retinanet_cfg()), seed=1)
    pack = pp.make_prompt_pack(model, 'prompts')
    out = tmp_path / 'p.safetensors'
    real_save = safetensors.torch.save_file

    def save_then_fail(tensors, filename, metadata=None):
        real_save(tensors, filename, metadata=metadata)
        with open(filename, 'r+b') as f:  # half written, then the "crash"
            f.truncate(os.path.getsize(filename) // 2)
        raise OSError('disk full')

    monkeypatch.setattr(safetensors.torch, 'save_file', save_then_fail)
    with pytest.raises(OSError, match='disk full'):
        pp.save_prompt_pack(pack, str(out))
    assert os.listdir(tmp_path) == []

    # An existing pack survives a failed overwrite unchanged.
    monkeypatch.setattr(safetensors.torch, 'save_file', real_save)
    pp.save_prompt_pack(pack, str(out))
    old = out.read_bytes()
    monkeypatch.setattr(safetensors.torch, 'save_file', save_then_fail)
    with pytest.raises(OSError):
        pp.save_prompt_pack(pp.make_prompt_pack(model, 'task'), str(out))
    assert os.listdir(tmp_path) == ['p.safetensors'] and out.read_bytes() == old


# -- swapping ------------------------------------------------------------------------
def test_swap_prompt_packs_bit_identical():
    model = perturb(build('mmdet', retinanet_cfg()), seed=1)
    packs = {}
    for task, seed in (('a', 10), ('b', 11)):
        perturb(model, seed=seed, only_prompts=True)
        packs[task] = pp.make_prompt_pack(model, 'prompts')
    heads = {k: v.clone() for k, v in model.state_dict().items()
             if not k.startswith('backbone.')}

    load_prompt_pack(model, packs['a'])
    out_a = predict(model)
    load_prompt_pack(model, packs['b'])
    out_b = predict(model)
    assert not same(out_a, out_b)
    load_prompt_pack(model, packs['a'])
    assert_same(predict(model), out_a)
    state = model.state_dict()
    assert_same({k: state[k] for k in heads}, heads)


def test_frozen_identity_cache_follows_writes():
    model = build('mmdet', retinanet_cfg())
    _, wrapper = pp.the_wrapper(model)
    sha = pp.frozen_identity(wrapper)
    assert sha == pp.state_identity(wrapper.frozen_state_dict())
    with torch.no_grad():
        wrapper.backbone.conv1.weight[0, 0, 0, 0] += 1
    assert pp.frozen_identity(wrapper) != sha
    assert pp.frozen_identity(wrapper) == pp.state_identity(wrapper.frozen_state_dict())


# -- runner: small checkpoints, resume, load_from=PACK -------------------------------
def toy_net(pretrained=None):
    from mmengine.model import BaseModel

    class Net(BaseModel):
        def __init__(self):
            super().__init__()
            init_cfg = dict(type='Pretrained', checkpoint=pretrained) if pretrained \
                else None
            self.backbone = ProTune(
                backbone=dict(type='mmdet.ResNet', depth=18, out_indices=(3, ),
                              init_cfg=init_cfg), stages=[2, 3])
            self.head = nn.Linear(512, 2)

        def forward(self, inputs, data_samples=None, mode='tensor'):
            out = self.head(self.backbone(inputs)[-1].mean((2, 3)))
            return dict(loss=out.square().mean()) if mode == 'loss' else out

    torch.manual_seed(0)
    return Net()


class _Images(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return dict(inputs=torch.randn(3, 32, 32, generator=torch.Generator()
                                       .manual_seed(i)))


class IterProbe(Hook):
    """Records the iteration each training step starts at, and the model's state
    before the first step."""

    def __init__(self):
        self.iters, self.first_state = [], None

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if not self.iters:
            self.first_state = snapshot(runner.model)
        self.iters.append(runner.iter)


@pytest.fixture
def quick_runner(monkeypatch):
    """Runner without its environment report (gcc/nvcc probes take seconds)."""
    import mmengine.runner.runner as runner_module
    monkeypatch.setattr(runner_module, 'collect_env', lambda: {})


def make_runner(work_dir, model, max_iters=2, hooks=(), **kw):
    from mmengine.runner import Runner
    probe = IterProbe()
    runner = Runner(
        model=model, work_dir=str(work_dir),
        train_dataloader=dict(dataset=_Images(), batch_size=2, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2,
                                           by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=list(hooks) + [probe], default_scope='mmengine', **kw)
    return runner, probe


def initialised_pack(tmp_path, pretrained, kind, seed):
    """(model, path): a toy_net from ``pretrained``, initialised, its prompts and
    heads made seed-specific, exported as a ``kind`` pack."""
    model = toy_net(pretrained)
    model.init_weights()
    perturb(model, seed=seed)
    path = str(tmp_path / f'{kind}_{seed}.safetensors')
    pp.save_prompt_pack(pp.make_prompt_pack(model, kind), path)
    return model, path


def save_pretrained(path, seed):
    """A 'pretrained' ResNet-18 file: the frozen source of toy_net."""
    from mmdet.models.backbones import ResNet
    torch.manual_seed(seed)
    torch.save(ResNet(depth=18, out_indices=(3, )).state_dict(), str(path))
    return str(path)


@pytest.mark.parametrize('save_frozen', [False, True])
def test_checkpoint_hook_saves_small_checkpoints_and_resumes(tmp_path, save_frozen,
                                                             quick_runner):
    pretrained = save_pretrained(tmp_path / 'r18.pth', seed=42)
    model = toy_net(pretrained)
    runner, _ = make_runner(tmp_path, model,
                            hooks=[PromptCheckpointHook(save_frozen=save_frozen)])
    runner.train()
    frozen = snapshot(model.backbone.backbone)
    path = osp.join(tmp_path, 'iter_2.pth')
    ckpt = torch.load(path, map_location='cpu', weights_only=True)
    keys = list(ckpt['state_dict'])
    has_frozen = any(k.startswith('backbone.backbone.') for k in keys)
    assert has_frozen == save_frozen
    assert any(k.startswith('backbone.prompts.') for k in keys) and 'head.weight' in keys
    assert {'optimizer', 'message_hub'} <= set(ckpt) and ckpt['meta']['iter'] == 2
    if save_frozen:
        return
    assert pp.recorded_identities(ckpt['state_dict']) == {
        'backbone.': pp.frozen_identity(model.backbone)}
    # A pack can be exported from it: the identity comes from the meta.
    pack = pp.make_prompt_pack(toy_net(), 'task', ckpt['state_dict'], ckpt['meta'])
    assert pack.metadata['frozen_sha256'] == pp.frozen_identity(model.backbone)

    # Resume: training goes on at iter 2, the frozen backbone is the pretrained one.
    model2 = toy_net(pretrained)
    runner2, probe = make_runner(tmp_path / 'resume', model2, max_iters=3,
                                 hooks=[PromptCheckpointHook()], resume=True,
                                 load_from=path)
    runner2.train()
    assert probe.iters == [2]
    assert unchanged(model2.backbone.backbone, frozen)

    # Other pretrained weights than in training: refused.
    other = save_pretrained(tmp_path / 'other.pth', seed=43)
    runner3, probe = make_runner(tmp_path / 'other', toy_net(other), max_iters=3,
                                 hooks=[PromptCheckpointHook()], resume=True,
                                 load_from=path)
    with pytest.raises(ValueError, match='trained on other frozen weights'):
        runner3.train()
    assert probe.iters == []


def test_runner_loads_pack_and_initialises_frozen_backbone(tmp_path, quick_runner):
    """runner.load_checkpoint(PACK) as in tools/test.py (Runner.test() runs no
    init_weights): the frozen backbone comes from its pretrained file, the rest
    from the pack; a pack that does not fit is refused before anything changes."""
    from mmengine.runner import Runner
    pretrained = save_pretrained(tmp_path / 'r18.pth', seed=42)
    source, pack = initialised_pack(tmp_path, pretrained, 'task', seed=1)

    model = toy_net(pretrained)  # built, not initialised: random frozen backbone
    assert not source.backbone.backbone.state_dict()['conv1.weight'].equal(
        model.backbone.backbone.state_dict()['conv1.weight'])
    runner = Runner(model=model, work_dir=str(tmp_path / 'w'), load_from=pack,
                    custom_hooks=[PromptCheckpointHook()], default_scope='mmengine')
    runner.load_checkpoint(pack)
    assert unchanged(model, source.state_dict())

    # Training from a pack (tools/train.py --cfg-options load_from=PACK): the
    # runner initialises first, then loads the pack before the first step.
    trainer, probe = make_runner(tmp_path / 'train', toy_net(pretrained), max_iters=1,
                                 hooks=[PromptCheckpointHook()], load_from=pack)
    trainer.train()
    assert unchanged(source, probe.first_state)

    other = perturb(build('mmdet', retinanet_cfg()), seed=1)
    wrong = str(tmp_path / 'wrong.safetensors')
    pp.save_prompt_pack(pp.make_prompt_pack(other, 'task'), wrong)
    snap = snapshot(model)
    with pytest.raises(ValueError, match='does not fit the model'):
        runner.load_checkpoint(wrong)
    assert unchanged(model, snap)


def test_ensure_pack_hook():
    cfg = Config(dict(custom_hooks=[dict(type='EMAHook')]))
    assert ensure_pack_hook(cfg)
    assert cfg.custom_hooks[-1] == dict(type='protune_mm.PromptCheckpointHook',
                                        save_frozen=True)
    assert not ensure_pack_hook(cfg) and len(cfg.custom_hooks) == 2


# -- command-line tools --------------------------------------------------------------
TOOL_CFG = f"""
default_scope = 'mmdet'
custom_imports = dict(imports=['protune_mm'], allow_failed_imports=False)
model = {retinanet_cfg()!r}
"""


def run_tool(*args):
    proc = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_export_prompts_cli(tmp_path):
    """The config comes from the checkpoint's meta.cfg (no --config)."""
    model_a = perturb(build('mmdet', retinanet_cfg()), seed=1)
    ckpt = save_checkpoint(model_a, tmp_path / 'a.pth', cfg_text=TOOL_CFG)
    out = str(tmp_path / 'a.safetensors')
    stdout = run_tool('tools/export_prompts.py', ckpt, '--out', out,
                      '--what', 'prompts')
    assert 'prompts pack of protune' in stdout and protune_mm.is_prompt_pack(out)
    model_b = perturb(build('mmdet', retinanet_cfg()), seed=1)
    perturb(model_b, seed=2, only_prompts=True)
    result = load_prompt_pack(model_b, out)
    assert result.kind == 'prompts'
    assert_same(predict(model_b), predict(model_a))


def test_param_report_cli(tmp_path):
    cfg_file = tmp_path / 'retina.py'
    cfg_file.write_text(TOOL_CFG)
    stdout = run_tool('tools/param_report.py', str(cfg_file),
                      '--cfg-options', 'model.bbox_head.num_classes=5')
    model = build('mmdet', dict(retinanet_cfg(), bbox_head=dict(
        retinanet_cfg()['bbox_head'], num_classes=5)))
    sizes = pp.pack_nbytes(model)
    for part in ('frozen backbone', 'prompts', 'neck', 'heads', 'trainable'):
        assert part in stdout
    for label, kind in (('prompts pack', 'prompts'), ('task pack', 'task'),
                        ('full checkpoint', 'full')):
        line = next(ln for ln in stdout.splitlines() if ln.startswith(label))
        assert f'{sizes[kind]:,}' in line, line


def test_pack_from_before_se_act_loads_as_relu(protune_pack, tmp_path):
    """Packs written before ProTune.se_act existed were trained with a ReLU gate:
    read as se_act='relu', a SiLU model (the default) refuses them, naming the
    option, and a ReLU model takes them."""
    old = pp.read_prompt_pack(protune_pack)
    assert old.metadata['method_config'].pop('se_act') == 'silu'
    path = str(tmp_path / 'old.safetensors')
    pp.save_prompt_pack(old, path)
    model = build('mmdet', retinanet_cfg())
    snap = snapshot(model)
    with pytest.raises(ValueError, match=r"se_act: pack 'relu', model 'silu'"):
        load_prompt_pack(model, path)
    assert unchanged(model, snap)
    relu = build('mmdet', retinanet_cfg(dict(retinanet_cfg()['backbone'], se_act='relu')))
    assert load_prompt_pack(relu, path).frozen_match
