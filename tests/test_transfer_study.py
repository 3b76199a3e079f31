"""protune_mm.study.transfer (tools/transfer_study.py) end to end at toy scale (a few
iterations on 32 px images): the JSON holds every requested method with a real mIoU
and parameter counts, head-only trains nothing on the backbone side, the frozen
backbones saved after adaptation are the pre-trained checkpoint bit for bit while
full fine-tuning and the prompts moved, and bad options fail naming the option."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from protune_mm.study import transfer as study_tool

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
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
    report = study_tool.main(TINY + ['--backbones', *BACKBONES, '--methods', *METHODS,
                                     '--work-dir', str(work), '--out', str(out)])
    with open(out) as f:
        data = json.load(f)
    return dict(root=root, out=out, work=work, data=data, report=report)


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
            assert set(frozen) == set(ref), method
            changed = [k for k in ref if not torch.equal(frozen[k], ref[k])]
            assert not changed, f'{backbone}/{method}: frozen tensors changed: {changed[:3]}'
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
    assert study_tool.check_equal(module, reference, 'bn') == len(reference)
    module.running_mean[0] += 1e-6
    with pytest.raises(RuntimeError, match='running_mean'):
        study_tool.check_equal(module, reference, 'bn')


def test_bad_arguments_name_the_option():
    with pytest.raises(ValueError, match=r"--methods.*'lora'.*allowed.*'protune'"):
        study_tool.parse_args(['--methods', 'frozen', 'lora'])
    with pytest.raises(ValueError, match=r"--backbones.*'swin'.*allowed.*'resnet'"):
        study_tool.parse_args(['--backbones', 'swin'])
    with pytest.raises(ValueError, match='--size'):
        study_tool.parse_args(['--size', '48'])
    with pytest.raises(ValueError, match='--iters'):
        study_tool.parse_args(['--iters', '0'])
    with pytest.raises(ValueError, match=r"--method-lr.*'protune'.*'lora=1e-3'"):
        study_tool.parse_args(['--method-lr', 'lora=1e-3'])
    with pytest.raises(ValueError, match=r"--method-lr full.*'fast'"):
        study_tool.parse_args(['--method-lr', 'full=fast'])
    with pytest.raises(ValueError, match=r"--method-lr full must be a positive"):
        study_tool.parse_args(['--method-lr', 'full=-1'])
    # From the command line: a usage error, not a traceback.
    proc = subprocess.run([sys.executable, TOOL, '--methods', 'bogus'],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode != 0
    assert '--methods' in proc.stderr and 'Traceback' not in proc.stderr
