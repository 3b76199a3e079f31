"""Every config in configs/ loads through the stock mmdet/mmseg base and builds the
model it promises (pretrained weights are not loaded: init_weights is not called)."""
import importlib
import os
import os.path as osp
import re
import subprocess

import pytest
from mmengine.config import Config
from mmengine.hub import get_config
from mmengine.registry import DefaultScope

from conftest import CONFIGS, REPO, config_path

# config name -> (wrapper class, inner backbone class, model class)
EXPECTED = {
    'mask_rcnn_protune_r50': ('ProTune', 'ResNet', 'MaskRCNN'),
    'mask_rcnn_protune_swin-t': ('ProTune', 'SwinTransformer', 'MaskRCNN'),
    'mask_rcnn_protune_convnext-t': ('ProTune', 'ConvNeXt', 'MaskRCNN'),
    'mask_rcnn_vpt_vit-b': ('VPT', 'TimmViT', 'MaskRCNN'),
    'mask_rcnn_vpt_swin-t': ('VPT', 'SwinTransformer', 'MaskRCNN'),
    'mask_rcnn_lora_swin-t': ('LoRA', 'SwinTransformer', 'MaskRCNN'),
    'mask_rcnn_frozen_r50': ('Frozen', 'ResNet', 'MaskRCNN'),
    'retinanet_protune_r50': ('ProTune', 'ResNet', 'RetinaNet'),
    'retinanet_vpt_r50': ('VPT', 'ResNet', 'RetinaNet'),
    'upernet_protune_r50_ade20k': ('ProTune', 'ResNetV1c', 'EncoderDecoder'),
    'upernet_protune_swin-t_ade20k': ('ProTune', 'SwinTransformer', 'EncoderDecoder'),
    'upernet_vpt_vit-b_ade20k': ('VPT', 'TimmViT', 'EncoderDecoder'),
    'upernet_protune_vit-b_ade20k': ('ProTune', 'TimmViT', 'EncoderDecoder'),
    'upernet_vpt_swin-t_ade20k': ('VPT', 'SwinTransformer', 'EncoderDecoder'),
    'upernet_lora_swin-t_ade20k': ('LoRA', 'SwinTransformer', 'EncoderDecoder'),
    'upernet_adaptformer_swin-t_ade20k': ('AdaptFormer', 'SwinTransformer',
                                          'EncoderDecoder'),
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



# -- the blocks written once in configs/_base_ ----------------------------------------
# config -> the entry of configs/_base_/protune_optim.py that replaces the stock optimizer
BASE_OPTIM = {
    'mask_rcnn_frozen_r50': 'det', 'mask_rcnn_protune_r50': 'det_protune',
    'mask_rcnn_protune_convnext-t': 'det_protune', 'mask_rcnn_vpt_vit-b': 'det_vpt',
    'retinanet_protune_r50': 'det_protune', 'retinanet_vpt_r50': 'det_vpt',
    'upernet_frozen_r50_ade20k': 'seg', 'upernet_protune_r50_ade20k': 'seg_protune',
    'upernet_protune_vit-b_ade20k': 'seg_protune', 'upernet_vpt_vit-b_ade20k': 'seg_vpt',
    'setr_vpt_vit-l_ade20k': 'seg_vpt',
}
# config -> (lr, prompt custom_keys) over the stock AdamW, which it keeps
_SEGFORMER_KEYS = {'backbone.prompts': dict(lr_mult=10.),
                   **{f'backbone.prompts.{i}.scale': dict(lr_mult=10., decay_mult=0.)
                      for i in range(4)}}
OVER_STOCK_ADAMW = {
    'mask_rcnn_protune_swin-t': (2e-4, 'protune'), 'mask_rcnn_vpt_swin-t': (2e-4, 'vpt'),
    'upernet_protune_swin-t_ade20k': (1.2e-4, 'protune'),
    'upernet_vpt_swin-t_ade20k': (1.2e-4, 'vpt'),
    # LoRA: no prompt custom_keys (A and B keep the stock weight decay).
    'mask_rcnn_lora_swin-t': (2e-4, {}), 'upernet_lora_swin-t_ade20k': (1.2e-4, {}),
    'upernet_adaptformer_swin-t_ade20k': (1.2e-4, {}),
    'segformer_protune_mit-b0_ade20k': (None, _SEGFORMER_KEYS),
}
# What the helpers of configs/_base_ are called; none stays in a resolved config.
HELPERS = ('protune_optim', 'timm_vit_b')


def base_helper(file, name):
    """A helper of configs/_base_/<file> as a plain dict."""
    return Config.fromfile(osp.join(REPO, 'configs', '_base_', file))[name].to_dict()


def stock_of(path):
    with open(path) as f:
        return get_config(re.search(r"'(mmdet|mmseg)::[^']+'", f.read())[0][1:-1])


def test_every_config_optimizer_is_listed():
    assert not set(BASE_OPTIM) & set(OVER_STOCK_ADAMW)
    assert sorted({**BASE_OPTIM, **OVER_STOCK_ADAMW}) == sorted(EXPECTED)


@pytest.mark.parametrize('path', CONFIGS, ids=config_name)
def test_optimizer_is_the_base_one_plus_the_configs_overrides(path):
    """The resolved optim_wrapper (and the seg warm-up/poly schedule) of each config
    is the entry of configs/_base_/protune_optim.py it names, or the stock AdamW with
    the lr and prompt custom_keys listed above: nothing else."""
    cfg = Config.fromfile(path)
    assert not set(HELPERS) & set(cfg), 'a helper of configs/_base_ stayed in the config'
    optim = base_helper('protune_optim.py', 'protune_optim')
    name = config_name(path)
    got = cfg.optim_wrapper.to_dict()
    got.pop('_scope_', None)  # set where the dict comes from the stock base
    if name in BASE_OPTIM:
        want = dict(optim[BASE_OPTIM[name]])
        # _delete_: the stock optimizer (SGD, momentum ...) is replaced, not merged.
        assert want.pop('_delete_') is True
        assert got == want
        if cfg.default_scope == 'mmseg':
            assert cfg.to_dict()['param_scheduler'] == optim['seg_schedule']
    else:
        lr, keys = OVER_STOCK_ADAMW[name]
        want = stock_of(path).optim_wrapper.to_dict()
        assert want['optimizer']['type'] == 'AdamW'
        if lr is not None:
            want['optimizer']['lr'] = lr
        want['paramwise_cfg']['custom_keys'].update(
            optim[keys]['custom_keys'] if isinstance(keys, str) else keys)
        assert got == want


def test_vit_b_configs_take_the_base_vit():
    vit = base_helper('timm_vit-b.py', 'timm_vit_b')
    for name in ('mask_rcnn_vpt_vit-b', 'upernet_vpt_vit-b_ade20k',
                 'upernet_protune_vit-b_ade20k'):
        assert Config.fromfile(config_path(name)).model.backbone.backbone.to_dict() == vit


def test_a_config_over_a_config_here_overrides_its_optimizer(tmp_path):
    """The optimizer is an ordinary optim_wrapper once resolved: a user's config that
    inherits one of ours overrides its lr or a paramwise entry by the usual merge."""
    user = tmp_path / 'user.py'
    user.write_text(
        f"_base_ = [{config_path('mask_rcnn_protune_r50')!r}]\n"
        "optim_wrapper = dict(optimizer=dict(lr=5e-4), paramwise_cfg=dict(custom_keys={\n"
        "    'backbone.prompts.0.scale': dict(decay_mult=1.)}))\n")
    ours = Config.fromfile(config_path('mask_rcnn_protune_r50')).optim_wrapper
    cfg = Config.fromfile(str(user)).optim_wrapper
    assert cfg.optimizer == dict(ours.optimizer, lr=5e-4)
    assert cfg.paramwise_cfg.custom_keys == dict(
        ours.paramwise_cfg.custom_keys, **{'backbone.prompts.0.scale': dict(decay_mult=1.)})


def test_a_config_over_the_base_file_overrides_an_entry(tmp_path):
    """A user's own config over a stock one takes an entry of
    configs/_base_/protune_optim.py and changes its lr and a paramwise entry; the
    helper does not stay in the resolved config."""
    base = osp.join(REPO, 'configs', '_base_', 'protune_optim.py')
    user = tmp_path / 'user.py'
    user.write_text(
        f"_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', {base!r}]\n"
        "optim_wrapper = _base_.pop('protune_optim').det_protune\n"
        "optim_wrapper.optimizer.lr = 1e-3\n"
        "optim_wrapper.paramwise_cfg.custom_keys['backbone.prompts.3.scale'] = "
        "dict(decay_mult=0.5)\n")
    cfg = Config.fromfile(str(user))
    assert 'protune_optim' not in cfg
    entry = base_helper('protune_optim.py', 'protune_optim')['det_protune']
    assert cfg.optim_wrapper.optimizer.to_dict() == dict(entry['optimizer'], lr=1e-3)
    assert 'momentum' not in cfg.optim_wrapper.optimizer  # the stock SGD is gone
    keys = cfg.optim_wrapper.paramwise_cfg.custom_keys.to_dict()
    assert keys == dict(entry['paramwise_cfg']['custom_keys'],
                        **{'backbone.prompts.3.scale': dict(decay_mult=0.5)})


# -- the launchers tools/dist_train.sh, dist_test.sh, slurm_train.sh -------------------
def run_launcher(tmp_path, *args, **env):
    """Runs a launcher from the repository root with fake `python` and `srun` on the
    PATH; returns (the process, [program, PYTHONPATH, its arguments...] or None)."""
    bin_dir, log = tmp_path / 'bin', tmp_path / 'argv'
    bin_dir.mkdir(exist_ok=True)
    for prog in ('python', 'srun'):
        fake = bin_dir / prog
        fake.write_text('#!/bin/sh\n{ basename "$0"; echo "$PYTHONPATH"; '
                        'for a in "$@"; do echo "$a"; done; } > "$LAUNCH_LOG"\n')
        fake.chmod(0o755)
    if log.exists():
        log.unlink()
    run_env = {k: v for k, v in os.environ.items()
               if k not in ('PYTHONPATH', 'NNODES', 'NODE_RANK', 'PORT', 'MASTER_ADDR',
                            'GPUS', 'GPUS_PER_NODE', 'CPUS_PER_TASK', 'SRUN_ARGS')}
    run_env.update(env, PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
                   LAUNCH_LOG=str(log))
    proc = subprocess.run(['bash', *args], cwd=REPO, env=run_env, capture_output=True,
                          text=True, timeout=60)
    return proc, (log.read_text().splitlines() if log.exists() else None)


TORCHRUN = ['-m', 'torch.distributed.run', '--nnodes=1', '--node_rank=0',
            '--master_addr=127.0.0.1']


def test_dist_train_runs_torchrun_as_mmdet_does(tmp_path):
    proc, argv = run_launcher(tmp_path, 'tools/dist_train.sh', 'c.py', '4', '--amp', 'a b')
    assert proc.returncode == 0, proc.stderr
    assert argv == ['python', 'tools/..:', *TORCHRUN, '--nproc_per_node=4',
                    '--master_port=29500', 'tools/train.py', 'c.py', '--launcher',
                    'pytorch', '--amp', 'a b']
    proc, argv = run_launcher(tmp_path, 'tools/dist_train.sh', 'c.py', '8', NNODES='2',
                              NODE_RANK='1', MASTER_ADDR='host0', PORT='1234',
                              PYTHONPATH='/x')
    assert argv[:9] == ['python', 'tools/..:/x', '-m', 'torch.distributed.run',
                        '--nnodes=2', '--node_rank=1', '--master_addr=host0',
                        '--nproc_per_node=8', '--master_port=1234']


def test_dist_test_runs_torchrun_as_mmdet_does(tmp_path):
    proc, argv = run_launcher(tmp_path, 'tools/dist_test.sh', 'c.py', 'ck.pth', '2',
                              '--prompts', 'p.safetensors')
    assert proc.returncode == 0, proc.stderr
    assert argv == ['python', 'tools/..:', *TORCHRUN, '--nproc_per_node=2',
                    '--master_port=29500', 'tools/test.py', 'c.py', 'ck.pth',
                    '--launcher', 'pytorch', '--prompts', 'p.safetensors']


def test_slurm_train_runs_srun_as_mmdet_does(tmp_path):
    proc, argv = run_launcher(tmp_path, 'tools/slurm_train.sh', 'part', 'job', 'c.py', 'wd',
                              '--amp', GPUS='16', GPUS_PER_NODE='4',
                              SRUN_ARGS='--qos=a --time=1')
    assert proc.returncode == 0, proc.stderr
    assert argv == ['srun', 'tools/..:', '-p', 'part', '--job-name=job', '--gres=gpu:4',
                    '--ntasks=16', '--ntasks-per-node=4', '--cpus-per-task=5',
                    '--kill-on-bad-exit=1', '--qos=a', '--time=1', 'python', '-u',
                    'tools/train.py', 'c.py', '--work-dir=wd', '--launcher=slurm', '--amp']


@pytest.mark.parametrize('args, usage', [
    (['tools/dist_train.sh', 'c.py'], 'CONFIG GPUS [tools/train.py arguments]'),
    (['tools/dist_test.sh', 'c.py', 'ck.pth'],
     'CONFIG CHECKPOINT GPUS [tools/test.py arguments]'),
    (['tools/slurm_train.sh', 'part', 'job', 'c.py'],
     'PARTITION JOB_NAME CONFIG WORK_DIR [tools/train.py arguments]'),
])
def test_launchers_refuse_missing_arguments(tmp_path, args, usage):
    proc, argv = run_launcher(tmp_path, *args)
    assert proc.returncode == 2 and argv is None
    assert f'usage: {args[0]} {usage}' in proc.stderr
