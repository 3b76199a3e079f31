"""protune_mm.study (tools/transfer_study.py) end to end at toy scale (a few
iterations on 32 px images): the JSON holds every requested method with a real mIoU
and parameter counts, head-only trains nothing on the backbone side, the frozen
backbones saved after adaptation are the pre-trained checkpoint bit for bit while
full fine-tuning and the prompts moved, and bad options fail naming the option."""
import json
import os
import os.path as osp
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch

from conftest import REPO
from protune_mm.cli import transfer_study as cli
from protune_mm.study import checks, loop, models, report, tasks, variants

TOOL = osp.join(REPO, 'tools', 'transfer_study.py')

METHODS = ['frozen', 'protune', 'vpt', 'full']
BACKBONES = ['resnet', 'vit']
TINY = ['--iters-pretrain', '6', '--iters', '3', '--batch', '2', '--size', '32',
        '--seeds', '0', '--num-train', '6', '--num-val', '3', '--threads', '1',
        '--log-interval', '2', '--method-lr', 'full=0.001']


@pytest.fixture(scope='module')
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp('transfer_study')
    out = root / 'out' / 'study.json'
    work = root / 'work'
    report = cli.main(TINY + ['--backbones', *BACKBONES, '--methods', *METHODS,
                              '--work-dir', str(work), '--out', str(out)])
    with open(out) as f:
        data = json.load(f)
    return dict(root=root, out=out, work=work, data=data, report=report)


@pytest.mark.slow
def test_json_has_every_method_with_metrics_and_counts(study):
    data = study['data']
    assert data['settings']['iters'] == 3 and data['settings']['seeds'] == [0]
    assert data['command'].startswith('python tools/transfer_study.py')
    assert '--iters 3' in data['command'] and '--size 32' in data['command']
    assert '--method-lr full=0.001' in data['command']
    assert data['settings']['method_lr'] == dict(frozen=0.01, protune=0.01, vpt=0.01,
                                                 full=0.001)
    assert list(data['results']) == BACKBONES
    for backbone in BACKBONES:
        res = data['results'][backbone]
        assert 0 <= res['pretrain']['mIoU'] <= 100
        assert 0 <= res['pretrain']['aAcc'] <= 100
        assert list(res['methods']) == METHODS
        heads = set()
        for method, entry in res['methods'].items():
            miou = entry['mIoU']['per_seed']['0']
            assert 0 <= miou <= 100 and entry['mIoU']['mean'] == pytest.approx(miou)
            assert 0 <= entry['aAcc']['mean'] <= 100
            assert entry['lr'] == (0.001 if method == 'full' else 0.01)
            t = entry['trainable']
            assert t['trainable'] == t['backbone_side_trainable'] + t['head_trainable']
            assert t['head_trainable'] > 0
            heads.add(t['head_trainable'])
            gain = entry['gain_over_head_only']['per_seed']['0']
            assert gain == pytest.approx(miou - res['methods']['frozen']['mIoU']['mean'],
                                         abs=0.011)
        assert len(heads) == 1, 'every method must train the same head'
        m = res['methods']
        assert m['frozen']['trainable']['backbone_side_trainable'] == 0
        assert m['frozen']['trainable']['prompts'] == 0
        for method in ('protune', 'vpt'):
            t = m[method]['trainable']
            assert 0 < t['prompts'] == t['backbone_side_trainable'] < t['backbone_total']
        full = m['full']['trainable']
        assert full['backbone_side_trainable'] == full['backbone_total'] > 0
        # The wrapped backbones are the stock one: same frozen parameter count.
        assert {m[k]['trainable']['backbone_total'] for k in METHODS} == \
            {full['backbone_total']}
        for method in ('frozen', 'protune', 'vpt'):
            assert m[method]['frozen_check'].startswith('bit-identical')
    # Written atomically: no temp file left next to the JSON.
    assert os.listdir(study['out'].parent) == ['study.json']


@pytest.mark.slow
def test_frozen_backbones_equal_the_pretrained_checkpoint(study):
    for backbone in BACKBONES:
        folder = study['work'] / backbone
        ckpt = folder / 'pretrained_task_a.pth'
        assert ckpt.is_file()
        assert study['data']['results'][backbone]['pretrain']['checkpoint'] == str(ckpt)
        ref = torch.load(ckpt, map_location='cpu', weights_only=True)['state_dict']
        assert ref
        for method in ('frozen', 'protune', 'vpt'):
            state = torch.load(folder / f'{method}_seed0.pth', map_location='cpu',
                               weights_only=True)['state_dict']
            frozen = {k[len('backbone.backbone.'):]: v for k, v in state.items()
                      if k.startswith('backbone.backbone.')}
            torch.testing.assert_close(frozen, ref, rtol=0, atol=0,
                                       msg=lambda m: f'{backbone}/{method}: {m}')
            prompts = {k: v for k, v in state.items() if k.startswith('backbone.prompts.')}
            if method == 'frozen':
                assert not prompts
            else:
                assert prompts
        # Full fine-tuning starts from the same checkpoint and trains the backbone.
        full = torch.load(folder / 'full_seed0.pth', map_location='cpu',
                          weights_only=True)['state_dict']
        assert any(not torch.equal(full['backbone.' + k], v) for k, v in ref.items()
                   if v.is_floating_point())
        # Pro-tuning's output scales start at 0: after training some moved.
        protune = torch.load(folder / 'protune_seed0.pth', map_location='cpu',
                             weights_only=True)['state_dict']
        scales = [v for k, v in protune.items() if k.endswith('.scale')]
        assert scales and any(bool(s.abs().sum() > 0) for s in scales)


def test_frozen_check_detects_a_changed_buffer():
    module = torch.nn.BatchNorm2d(4)
    reference = {k: v.clone() for k, v in module.state_dict().items()}
    assert checks.check_equal(module, reference, 'bn') == len(reference)
    module.running_mean[0] += 1e-6
    with pytest.raises(RuntimeError, match='running_mean'):
        checks.check_equal(module, reference, 'bn')
    module.running_mean.copy_(reference['running_mean'])
    assert checks.check_equal(module, reference, 'bn') == len(reference)
    other_dtype = dict(reference, num_batches_tracked=reference['num_batches_tracked'].int())
    with pytest.raises(RuntimeError, match="bn: differs.*dtype.*num_batches_tracked"):
        checks.check_equal(module, other_dtype, 'bn')
    missing = {k: v for k, v in reference.items() if k != 'running_var'}
    with pytest.raises(RuntimeError, match=r"bn: keys differ.*unexpected \['running_var'\]"):
        checks.check_equal(module, missing, 'bn')


def test_bad_arguments_name_the_option():
    with pytest.raises(ValueError, match=r"--methods.*'lora'.*allowed.*'protune'"):
        cli.parse_args(['--methods', 'frozen', 'lora'])
    with pytest.raises(ValueError, match=r"--backbones.*'swin'.*allowed.*'resnet'"):
        cli.parse_args(['--backbones', 'swin'])
    with pytest.raises(ValueError, match='--size'):
        cli.parse_args(['--size', '48'])
    with pytest.raises(ValueError, match='--iters'):
        cli.parse_args(['--iters', '0'])
    with pytest.raises(ValueError, match=r"--method-lr.*'protune'.*'lora=1e-3'"):
        cli.parse_args(['--method-lr', 'lora=1e-3'])
    with pytest.raises(ValueError, match=r"--method-lr full.*'fast'"):
        cli.parse_args(['--method-lr', 'full=fast'])
    with pytest.raises(ValueError, match=r"--method-lr full must be a positive"):
        cli.parse_args(['--method-lr', 'full=-1'])
    # From the command line: a usage error, not a traceback.
    proc = subprocess.run([sys.executable, TOOL, '--methods', 'bogus'],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode != 0
    assert '--methods' in proc.stderr and 'Traceback' not in proc.stderr


# ----------------------------------------------------------------------------------
# The study's parts, without training.

def _run(miou, aacc=80.0):
    """What adapt() returns for one seed, with the fields summarise() reads."""
    return dict(mIoU=miou, aAcc=aacc, per_class_IoU={'background': 90.0},
                backbone_cfg=dict(type='x'), lr=0.01, counts=dict(trainable=1),
                frozen_check=None, time_s=1.0)


def test_summarise_gives_mean_std_per_seed_and_gain_over_head_only():
    runs = OrderedDict(frozen={0: _run(40.0, 80.0), 1: _run(42.0, 82.0)},
                       protune={0: _run(45.0, 85.0), 1: _run(41.0, 81.0)})
    out = report.summarise(runs, [0, 1])
    assert list(out) == ['frozen', 'protune']
    p = out['protune']
    assert p['label'] == 'Pro-tuning'
    assert p['mIoU'] == dict(mean=43.0, std=2.83, per_seed={'0': 45.0, '1': 41.0})
    assert p['aAcc'] == dict(mean=83.0, std=2.83, per_seed={'0': 85.0, '1': 81.0})
    # Gains are per seed, against head-only of the same seed: +5 and -1.
    assert p['gain_over_head_only'] == dict(mean=2.0, std=4.24,
                                            per_seed={'0': 5.0, '1': -1.0},
                                            seeds_better=1)
    assert out['frozen']['gain_over_head_only']['seeds_better'] == 0
    assert 'share_of_full_gain' not in p  # no full fine-tuning in the run
    # With full fine-tuning (+8 over head-only): Pro-tuning recovers 2 / 8 of it.
    runs['full'] = {0: _run(50.0), 1: _run(48.0)}
    out = report.summarise(runs, [0, 1])
    assert out['protune']['share_of_full_gain'] == 0.25
    assert out['full']['share_of_full_gain'] == 1.0
    assert 'share_of_full_gain' not in out['frozen']
    # One seed: no spread; without head-only: no gains.
    single = report.summarise(OrderedDict(full={3: _run(50.0)}), [3])
    assert single['full']['mIoU'] == dict(mean=50.0, std=0.0, per_seed={'3': 50.0})
    assert 'gain_over_head_only' not in single['full']


def test_lr_warms_up_linearly_then_decays_to_zero():
    iters, base = 100, 1.0  # warm-up: 5% = 5 iterations
    lrs = [loop.lr_at(it, iters, base) for it in range(iters)]
    assert lrs[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert lrs[5] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[5:], lrs[6:]))
    assert 0 < lrs[-1] < 1e-3


def test_data_order_is_shuffled_epochs_fixed_by_the_seed():
    batches = loop.data_order(10, 7, 4, seed=0)
    assert len(batches) == 7 and all(len(b) == 4 for b in batches)
    flat = [i for b in batches for i in b]
    assert sorted(flat[:10]) == list(range(10))  # the first epoch sees every image once
    assert sorted(flat[10:20]) == list(range(10))
    assert loop.data_order(10, 7, 4, seed=0) == batches
    assert loop.data_order(10, 7, 4, seed=1) != batches


@pytest.mark.parametrize('task, classes', [('A', 3), ('B', 4)])
def test_tasks_are_deterministic_and_use_their_classes(task, classes):
    images, labels = tasks.make_task(task, 3, 32, seed=7)
    assert images.shape == (3, 32, 32, 3) and images.dtype == np.uint8
    assert labels.shape == (3, 32, 32) and labels.dtype == np.uint8
    assert len(tasks.TASKS[task]['classes']) == classes
    assert set(np.unique(labels)) <= set(range(classes)) and labels.max() > 0
    again = tasks.make_task(task, 3, 32, seed=7)
    assert np.array_equal(again[0], images) and np.array_equal(again[1], labels)
    assert not np.array_equal(tasks.make_task(task, 3, 32, seed=8)[0], images)


def test_vpt_border_keeps_the_ratio_of_10_px_at_320():
    assert [models.vpt_border(s) for s in (32, 64, 320, 640)] == [1, 2, 10, 20]


@pytest.mark.slow
def test_robustness_option_adds_corrupted_evaluation_and_keeps_the_numbers(tmp_path):
    """--robustness evaluates each adapted model on corrupted task B val images
    (protune_mm.Corrupt) and leaves every other number of the study unchanged."""
    common = TINY[:-2] + ['--backbones', 'resnet', '--methods', 'frozen', 'protune']
    plain = cli.main(common + ['--work-dir', str(tmp_path / 'a'),
                               '--out', str(tmp_path / 'a.json')])
    robust = cli.main(common + ['--robustness', '--corruptions', 'fog', 'pixelate',
                                '--severities', '1', '5',
                                '--work-dir', str(tmp_path / 'b'),
                                '--out', str(tmp_path / 'b.json')])
    for method in ('frozen', 'protune'):
        a = plain['results']['resnet']['methods'][method]
        b = robust['results']['resnet']['methods'][method]
        assert 'robustness' not in a
        assert a['mIoU'] == b['mIoU'] and a['aAcc'] == b['aAcc']
        r = b['robustness']
        detail = r['per_seed_detail']['0']
        assert list(detail['evaluations']) == ['fog', 'pixelate']
        assert list(detail['evaluations']['fog']) == ['1', '5']
        values = [v['mIoU'] for c in detail['evaluations'].values() for v in c.values()]
        assert r['mIoU_clean']['mean'] == a['mIoU']['mean']
        assert detail['mPC'] == pytest.approx(np.mean(values), abs=1e-4)
        assert detail['rPC'] == pytest.approx(detail['mPC'] / detail['mIoU_clean'],
                                              abs=1e-3)
    assert 'Corrupted task B val' in '\n'.join(robust['table'])
    assert '--robustness --corruptions fog pixelate --severities 1 5' in robust['command']


# ----------------------------------------------------------------------------------
# Method variants, task B data scale, pre-training reuse (issue 15).

def test_variants_parse_and_bad_ones_name_the_entry():
    args = cli.parse_args(['--methods', 'frozen', 'protune:hidden_ratio=0.25',
                           'protune:place=output,prompt_lr=3e-2',
                           'full:lp_iters=250,lr=1e-3'])
    v = args.methods[2]
    assert v.name == 'protune' and v.options == dict(place='output', prompt_lr=0.03)
    assert v.label == 'Pro-tuning (place=output, prompt_lr=0.03)'
    assert variants.method_lr(args, args.methods[3]) == 1e-3
    assert variants.method_lr(args, args.methods[1]) == args.lr
    cfg = models.method_config(args.methods[1], 'resnet', {}, 64)
    assert cfg['hidden_ratio'] == 0.25 and cfg['type'] == 'protune_mm.ProTune'
    blocks = models.method_config(variants.Variant('protune:per_block=True'),
                                  'resnet', {}, 64)
    assert blocks['stage_modules'][:3] == ['layer1.0', 'layer1.1', 'layer2.0']
    assert 'per_block' not in blocks and 'memory_efficient' not in blocks
    for spec, match in [
            ('lora:x=1', r"--methods.*'lora'.*allowed"),
            ('protune:hidden_ratio', r'expected NAME:key=value'),
            ('protune:prompt_lr=-1', r'prompt_lr must be a positive number'),
            ('frozen:prompt_lr=0.1', r'prompt_lr needs prompts'),
            ('vpt:per_block=True', r'per_block=True/False is a protune option'),
            ('protune:lp_iters=5', r'lp_iters=N .* is a full option'),
            ('full:hidden_ratio=0.5', r"full has no wrapper.*\['hidden_ratio'\]"),
            ('protune:backbone_lr=0.1', r'backbone_lr needs a trained backbone'),
            ('protune:lr=1,lr=2', r'lr given twice')]:
        with pytest.raises(ValueError, match=match):
            cli.parse_args(['--methods', spec])
    with pytest.raises(ValueError, match='per_block is for the resnet'):
        models.method_config(variants.Variant('protune:per_block=True'), 'vit',
                             {}, 64)


def test_prompt_lr_gives_the_prompts_their_own_schedule(monkeypatch):
    """prompt_lr: the backbone-side parameters follow the same warm-up/cosine
    schedule from their own peak lr; the head keeps the method lr."""
    seen = []

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = torch.nn.Linear(2, 2)
            self.decode_head = torch.nn.Linear(2, 2)

        def train_step(self, batch, optim):
            seen.append(sorted(g['lr'] for g in optim.param_groups if 'base' in g))
            return dict(loss=torch.tensor(1.0))

    monkeypatch.setattr(loop, 'make_batch', lambda split, idx: None)
    monkeypatch.setattr(loop, 'log', lambda msg: None)
    args = cli.parse_args(['--batch', '1', '--log-interval', '100'])
    split = (np.zeros((4, 1)), None)
    loop.train(Model(), split, args, 40, 0.01, 0, 'x', side_lr=0.03)
    assert seen[10] == pytest.approx([loop.lr_at(10, 40, 0.01),
                                      loop.lr_at(10, 40, 0.03)])


def test_data_scale_and_pretraining_reuse(tmp_path):
    """--num-train-b trains task B on its first N images (nested subsets); a second
    study with the same task A settings reuses the pre-trained backbone."""
    a = tasks.make_task('B', 5, 32, seed=2000)
    b = tasks.make_task('B', 2, 32, seed=2000)
    assert np.array_equal(a[0][:2], b[0]) and np.array_equal(a[1][:2], b[1])
    common = TINY[:-2] + ['--backbones', 'resnet', '--work-dir', str(tmp_path / 'w')]
    first = cli.main(common + ['--methods', 'frozen', '--num-train-b', '2',
                               '--out', str(tmp_path / 'a.json')])
    assert first['settings']['num_train_b'] == 2
    assert '--num-train-b 2' in first['command']
    assert 'reused' not in first['results']['resnet']['pretrain']
    second = cli.main(common + ['--methods', 'frozen', 'full:lp_iters=2',
                                '--out', str(tmp_path / 'b.json')])
    pre = second['results']['resnet']['pretrain']
    assert pre['reused'] and pre['mIoU'] == first['results']['resnet']['pretrain']['mIoU']
    assert second['settings']['num_train_b'] == 6
    assert second['results']['resnet']['methods']['full:lp_iters=2']['label'] == \
        'full fine-tuning (lp_iters=2)'
    changed = cli.main(common + ['--methods', 'frozen', '--iters-pretrain', '5',
                                 '--out', str(tmp_path / 'c.json')])
    assert 'reused' not in changed['results']['resnet']['pretrain']


def test_eval_train_adds_train_miou_and_keeps_the_numbers(tmp_path):
    """--eval-train scores each adapted model on the task B images it trained on;
    every other number of the study is unchanged."""
    common = TINY[:-2] + ['--backbones', 'resnet', '--methods', 'frozen', 'protune',
                          '--work-dir', str(tmp_path / 'w')]
    plain = cli.main(common + ['--out', str(tmp_path / 'a.json')])
    scored = cli.main(common + ['--eval-train', '--out', str(tmp_path / 'b.json')])
    assert scored['settings']['eval_train'] and '--eval-train' in scored['command']
    assert 'train mIoU' in scored['table'][0] and 'train mIoU' not in plain['table'][0]
    for method in ('frozen', 'protune'):
        a = plain['results']['resnet']['methods'][method]
        b = scored['results']['resnet']['methods'][method]
        assert 'train_mIoU' not in a
        assert a['mIoU'] == b['mIoU'] and a['aAcc'] == b['aAcc']
        assert 0 <= b['train_mIoU']['per_seed']['0'] <= 100
    # The resolved wrapper arguments are recorded (place: not given, resolved).
    assert plain['results']['resnet']['methods']['frozen']['method_config'] == {}
    assert plain['results']['resnet']['methods']['protune']['method_config']['place'] \
        == 'input'


def test_evaluate_scores_the_first_images_of_a_split():
    """evaluate(model, data, 'train', n) scores the first n images of that split
    only: a model right on images 0-1 and wrong on 2-3 gets 100 mIoU on the first
    two and less on all four."""
    from mmengine.structures import PixelData
    images = np.arange(4, dtype=np.uint8)[:, None, None, None].repeat(8, 1) \
        .repeat(8, 2).repeat(3, 3)  # image i is all i
    labels = np.zeros((4, 8, 8), np.uint8)
    labels[:, :4] = 1  # two classes in every image

    class Model(torch.nn.Module):
        def val_step(self, batch):
            out = []
            for image, sample in zip(batch['inputs'], batch['data_samples']):
                pred = sample.gt_sem_seg.data.clone()
                if image.max() >= 2:
                    pred = 1 - pred
                sample.pred_sem_seg = PixelData(data=pred)
                out.append(sample)
            return out

    data = dict(train=(images, labels), val=(images, labels), classes=('a', 'b'))
    model = Model()
    assert loop.evaluate(model, data, 'train', 2)['mIoU'] == 100.0
    assert loop.evaluate(model, data, 'train', 10)['mIoU'] < 50
    assert loop.evaluate(model, data)['mIoU'] < 50
