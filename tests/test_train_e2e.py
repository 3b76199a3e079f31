"""Scaled-down copies of the real configs train and evaluate end to end on CPU.

Each test loads a file of configs/, keeps its model/data/metric/hook settings and
only shrinks it (ResNet-18 / 32-wide Swin / 64-wide 4-block ViT, 128 px images,
batch 2, 2 iterations, 2 validation images, BN instead of SyncBN, no pretrained
download), then runs it with mmengine's Runner through tools/train.py's own
functions (protune_mm.cli.train; one test uses the command line) and checks the stock
metric keys.
"""
import copy
import glob
import os.path as osp
import pickle
import subprocess
import sys
import uuid

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook

from conftest import CONFIGS, REPO, config_path, load_tool, shrink
from protune_mm.cli import test as test_tool
from protune_mm.cli import train as train_tool
from protune_mm.cli.common import check_data
from protune_mm.cli.config import build_runner


class Recorder(Hook):
    """Records what the runner does, for assertions."""
    priority = 'LOWEST'

    def __init__(self):
        self.metrics, self.iters, self.at_start = [], [], None

    def before_train(self, runner):
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        self.at_start = dict(
            iter=runner.iter, epoch=runner.epoch,
            optimizer=copy.deepcopy(runner.optim_wrapper.state_dict()),
            state=copy.deepcopy(model.state_dict()))

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.iters.append(runner.iter)

    def after_val_epoch(self, runner, metrics=None):
        self.metrics.append(dict(metrics or {}))


def run_train(cfg: Config, argv=()):
    """Train through tools/train.py's functions (its argument handling and checks)
    in-process."""
    args = train_tool.parse_args([cfg.filename, *argv])
    full = train_tool.apply_args(copy.deepcopy(cfg), args)
    check_data(full, splits=('train', 'val'))
    runner = build_runner(full)
    recorder = Recorder()
    runner.register_hook(recorder)
    runner.train()
    return runner, recorder


def metric_keys(cfg):
    if cfg.default_scope == 'mmdet':
        keys = {'coco/bbox_mAP'}
        if cfg.model.type == 'MaskRCNN':
            keys.add('coco/segm_mAP')
        return keys
    return {'mIoU', 'aAcc', 'mAcc'}


# ----------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize('name', [osp.splitext(osp.basename(p))[0] for p in CONFIGS])
def test_scaled_down_config_trains_and_evaluates(name, synthetic_data, tmp_path):
    cfg = shrink(Config.fromfile(config_path(name)), synthetic_data, str(tmp_path))
    runner, rec = run_train(cfg)
    model = runner.model
    # The real wrapper, prompts and hooks are in use.
    assert type(model.backbone).__name__ == cfg.model.backbone.type.split('.')[-1]
    hook_names = [type(h).__name__ for h in runner.hooks]
    assert 'ParamReportHook' in hook_names and 'PromptCheckpointHook' in hook_names
    assert rec.iters == [0, 1]
    # The stock metric was computed on the validation images.
    assert rec.metrics and metric_keys(cfg) <= set(rec.metrics[-1]), rec.metrics
    # Training moved the prompts, never the frozen backbone.
    before, after = rec.at_start['state'], model.state_dict()
    frozen = [k for k in before if k.startswith('backbone.backbone.')]
    prompts = [k for k in before if k.startswith('backbone.prompts.')]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    if cfg.model.backbone.type != 'protune_mm.Frozen':
        assert prompts and any(not torch.equal(before[k], after[k]) for k in prompts)
    # The checkpoint is small: prompts, neck, heads, optimizer; no frozen tensor.
    ckpt = torch.load(glob.glob(osp.join(str(tmp_path), '*.pth'))[0],
                      map_location='cpu', weights_only=False)
    assert not any(k.startswith('backbone.backbone.') for k in ckpt['state_dict'])
    assert all(k in ckpt['state_dict'] for k in prompts)
    assert ckpt['optimizer']['state']


def _pretrained_file(cfg, path):
    """A 'pretrained' inner backbone checkpoint (random weights, fixed seed), so
    small checkpoints can be completed from init_cfg as with real weights."""
    from mmdet.registry import MODELS
    torch.manual_seed(1)
    inner = MODELS.build(copy.deepcopy(cfg.model.backbone.backbone))
    torch.save(dict(state_dict=inner.state_dict()), path)
    return {k: v.clone() for k, v in inner.state_dict().items()}


@pytest.mark.slow
def test_resume_restores_iteration_and_optimizer_state(synthetic_data, tmp_path):
    base = shrink(Config.fromfile(config_path('retinanet_protune_r50')), synthetic_data,
                  str(tmp_path))
    weights = _pretrained_file(base, str(tmp_path / 'pretrained.pth'))
    base.model.backbone.backbone.init_cfg = dict(
        type='Pretrained', checkpoint=str(tmp_path / 'pretrained.pth'))

    # Run 1 stops after epoch 1 and its checkpoint (2 iterations).
    runner, _ = run_train(copy.deepcopy(base))
    ckpt_path = str(tmp_path / 'epoch_1.pth')
    ckpt = torch.load(ckpt_path, map_location='cpu', weights_only=False)
    assert ckpt['meta']['iter'] == 2 and ckpt['meta']['epoch'] == 1
    assert not any(k.startswith('backbone.backbone.') for k in ckpt['state_dict'])
    del runner

    # Run 2: same work dir, --resume (latest checkpoint), one more epoch.
    cfg = copy.deepcopy(base)
    cfg.train_cfg.max_epochs = 2
    cfg.experiment_name += '_resumed'
    runner, rec = run_train(cfg, ['--resume'])
    start = rec.at_start
    assert (start['iter'], start['epoch']) == (2, 1)
    assert rec.iters == [2, 3]
    # Same optimizer state as saved (AdamW moments and step of every tensor).
    saved, restored = ckpt['optimizer'], start['optimizer']
    assert saved['state'].keys() == restored['state'].keys() and saved['state']
    for idx, state in saved['state'].items():
        for key, value in state.items():
            assert torch.equal(torch.as_tensor(value),
                               torch.as_tensor(restored['state'][idx][key])), (idx, key)
    assert [g['lr'] for g in saved['param_groups']] == \
        [g['lr'] for g in restored['param_groups']]
    # Trainable weights from the checkpoint, frozen ones from the pretrained file.
    for key, value in ckpt['state_dict'].items():
        assert torch.equal(start['state'][key], value), key
    for key, value in weights.items():
        assert torch.equal(start['state'][f'backbone.backbone.{key}'], value), key
    assert runner.iter == 4


def test_missing_data_names_the_path_and_the_readme_section(tmp_path):
    missing = str(tmp_path / 'nowhere') + '/'
    for name in ('mask_rcnn_protune_r50', 'upernet_protune_r50_ade20k'):
        with pytest.raises(SystemExit) as e:
            train_tool.main([config_path(name), '--work-dir', str(tmp_path),
                             '--cfg-options',
                             f'train_dataloader.dataset.data_root={missing}'])
        message = str(e.value.code)
        assert missing.rstrip('/') in message and 'train_dataloader' in message
        assert "README.md, section '## Data preparation'" in message
    # The stock CocoMetric reads its own copy of the annotation path.
    with pytest.raises(SystemExit) as e:
        train_tool.main([config_path('retinanet_vpt_r50'), '--work-dir', str(tmp_path),
                         '--cfg-options', f'val_evaluator.ann_file={missing}val.json',
                         f'train_dataloader.dataset.data_root={REPO}',
                         'train_dataloader.dataset.ann_file=configs',
                         'train_dataloader.dataset.data_prefix.img=tools',
                         f'val_dataloader.dataset.data_root={REPO}',
                         'val_dataloader.dataset.ann_file=configs',
                         'val_dataloader.dataset.data_prefix.img=tools'])
    assert f'val_evaluator.ann_file: {missing}val.json does not exist' in str(e.value.code)
    # test.py checks the test split the same way.
    ckpt = tmp_path / 'x.pth'
    torch.save({}, ckpt)
    with pytest.raises(SystemExit) as e:
        test_tool.main([config_path('upernet_frozen_r50_ade20k'), str(ckpt),
                        '--work-dir', str(tmp_path), '--cfg-options',
                        f'test_dataloader.dataset.data_root={missing}'])
    assert missing.rstrip('/') in str(e.value.code)
    assert '## Data preparation' in str(e.value.code)


def test_command_line_options_reach_the_config(tmp_path):
    # --resume with a path resumes from it; without, from the latest in work_dir.
    ckpt = tmp_path / 'iter_2.pth'
    torch.save(dict(state_dict={}), str(ckpt))  # readable (an empty file is refused)
    det = config_path('retinanet_protune_r50')
    cfg = train_tool.setup_cfg(train_tool.parse_args([det, '--resume', str(ckpt)]))
    assert cfg.resume is True and cfg.load_from == str(ckpt)
    assert cfg.work_dir == osp.join('./work_dirs', 'retinanet_protune_r50')
    cfg = train_tool.setup_cfg(train_tool.parse_args([det, '--resume']))
    assert cfg.resume is True and cfg.load_from is None
    with pytest.raises(FileNotFoundError, match='nowhere.pth'):
        train_tool.setup_cfg(train_tool.parse_args([det, '--resume', 'nowhere.pth']))
    # test.py: mmseg semantics of --out (a directory of PNGs) and --show-dir.
    seg = config_path('upernet_protune_r50_ade20k')
    cfg = test_tool.setup_cfg(test_tool.parse_args(
        [seg, str(ckpt), '--out', 'preds', '--show-dir', 'painted']))
    assert cfg.load_from == str(ckpt)
    assert cfg.test_evaluator.output_dir == 'preds' and cfg.test_evaluator.keep_results
    assert cfg.default_hooks.visualization.draw is True
    assert cfg.visualizer.save_dir == 'painted'
    # mmdet semantics: --out is a pickle of the predictions.
    with pytest.raises(ValueError, match=r'--out must be a \.pkl'):
        test_tool.setup_cfg(test_tool.parse_args([det, str(ckpt), '--out', 'preds']))
    # Neither mmdet nor mmseg: refused, naming the field and the allowed values.
    other = tmp_path / 'other.py'
    other.write_text("default_scope = 'mmpretrain'\n")
    with pytest.raises(ValueError, match=r"default_scope must be one of \['mmdet', "
                                         r"'mmseg'\]"):
        train_tool.setup_cfg(train_tool.parse_args([str(other)]))


def test_amp_is_refused_on_cpu_with_a_clear_message(tmp_path):
    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA: --amp is allowed')
    with pytest.raises(SystemExit) as e:
        train_tool.main([config_path('retinanet_protune_r50'), '--amp',
                         '--work-dir', str(tmp_path)])
    assert '--amp needs a CUDA' in str(e.value.code)


@pytest.mark.slow
def test_cli_train_then_test_small_checkpoint(synthetic_data, tmp_path):
    """tools/train.py on the command line writes a small checkpoint; tools/test.py
    completes it (or a prompt pack made from it) with the pretrained frozen
    backbone and predicts exactly what the full model (frozen weights included
    in the checkpoint) predicts."""
    cfg = shrink(Config.fromfile(config_path('retinanet_protune_r50')), synthetic_data,
                 str(tmp_path / 'run'))
    weights = _pretrained_file(cfg, str(tmp_path / 'pretrained.pth'))
    cfg.model.backbone.backbone.init_cfg = dict(
        type='Pretrained', checkpoint=str(tmp_path / 'pretrained.pth'))
    path = str(tmp_path / 'retinanet_small.py')
    cfg.dump(path)
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'train.py'), path,
         '--work-dir', str(tmp_path / 'run')],
        cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    small = str(tmp_path / 'run' / 'epoch_1.pth')
    state = torch.load(small, map_location='cpu', weights_only=False)['state_dict']
    assert not any(k.startswith('backbone.backbone.') for k in state)

    # tools/test.py with the small checkpoint (in-process).
    out_small = str(tmp_path / 'small.pkl')
    # Each run gets another seed: only weights that really come from the
    # checkpoint / pack / pretrained file can give identical predictions.
    test_tool.main([path, small, '--work-dir', str(tmp_path / 'test_small'),
                    '--out', out_small, '--show-dir', 'painted',
                    '--cfg-options', 'randomness.seed=1',
                    f'experiment_name=t_{uuid.uuid4().hex[:8]}'])

    # The same weights as one full checkpoint, with no pretrained source.
    full = str(tmp_path / 'full.pth')
    state.update({f'backbone.backbone.{k}': v for k, v in weights.items()})
    torch.save(dict(state_dict=state, meta={}), full)
    out_full = str(tmp_path / 'full.pkl')
    test_tool.main([path, full, '--work-dir', str(tmp_path / 'test_full'),
                    '--out', out_full, '--cfg-options', 'randomness.seed=2',
                    'model.backbone.backbone.init_cfg=None',
                    f'experiment_name=t_{uuid.uuid4().hex[:8]}'])

    painted = glob.glob(str(tmp_path / 'test_small' / '*' / 'painted' / '*.jpg'))
    assert len(painted) == 2

    # tools/test.py CONFIG PACK: a task pack exported from the small checkpoint.
    pack = str(tmp_path / 'task.safetensors')
    load_tool('export_prompts').main([small, '--out', pack, '--config', path])
    out_pack = str(tmp_path / 'pack.pkl')
    test_tool.main([path, pack, '--work-dir', str(tmp_path / 'test_pack'),
                    '--out', out_pack, '--cfg-options', 'randomness.seed=3',
                    f'experiment_name=t_{uuid.uuid4().hex[:8]}'])

    preds = []
    for out in (out_small, out_full, out_pack):
        with open(out, 'rb') as f:
            preds.append(pickle.load(f))
    assert [len(p) for p in preds] == [2, 2, 2]
    for a, *others in zip(*preds):
        assert len(a['pred_instances']['bboxes']) > 0
        for b in others:
            for key in ('bboxes', 'scores', 'labels'):
                assert torch.equal(a['pred_instances'][key],
                                   b['pred_instances'][key]), key

    # A small checkpoint without its pretrained source is refused, not run with
    # a random frozen backbone, in one line.
    with pytest.raises(SystemExit, match='^error: .*other frozen weights'):
        test_tool.main([path, small, '--work-dir', str(tmp_path / 'test_refused'),
                        '--cfg-options', 'model.backbone.backbone.init_cfg=None',
                        f'experiment_name=t_{uuid.uuid4().hex[:8]}'])
