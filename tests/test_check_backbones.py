"""tools/check_backbones.py on a small sample: a stock config that passes (and a
second config on the same backbone, checked once), a config without
model.backbone, one that does not load, and a backbone with no adapter that also
needs a larger input than the default check size.

The full sweep over every stock config is not part of the tests (docs/tools.md).
"""
import json
import os

import torch
import torch.nn as nn
from mmdet.registry import MODELS as MMDET_MODELS

from conftest import load_tool
from protune_mm.sweep.configs import strip_weights

STOCK = 'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py'


@MMDET_MODELS.register_module(force=True)
class CheckToyNet(nn.Module):
    """A backbone nobody described (no adapter), refusing inputs under 128 px."""

    def __init__(self, width=8):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, stride=2, padding=1)

    def forward(self, x):
        if min(x.shape[-2:]) < 128:
            raise ValueError(f'CheckToyNet needs at least 128 px, got {tuple(x.shape)}')
        y = torch.relu(self.conv1(x))
        return (y, torch.relu(self.conv2(y)))


@MMDET_MODELS.register_module(force=True)
class CheckCrashNet(CheckToyNet):
    """A backbone that kills its process (as a segfaulting compiled op would)."""

    def forward(self, x):
        os.abort()


def table_cells(line):
    """The cells of a printed table row; [] for any other line."""
    if not line.startswith('|'):
        return []
    return [c.strip() for c in line.strip('|').split('|')]


def write(path, text):
    path.write_text(text)
    return str(path)


def test_strip_weights():
    cfg = dict(type='X', init_cfg=dict(type='Pretrained', checkpoint='a.pth'),
               pretrained='b.pth', norm_cfg=dict(type='SyncBN', requires_grad=True),
               backbone_cfg=dict(type='Y', init_cfg=dict(checkpoint='c.pth')),
               layers=[dict(type='Z', pretrained=True), 3], num_channels=(32, 64))
    stripped = strip_weights(cfg)
    assert stripped == dict(
        type='X', norm_cfg=dict(type='BN', requires_grad=True),
        backbone_cfg=dict(type='Y'), layers=[dict(type='Z'), 3], num_channels=(32, 64))
    assert type(stripped['num_channels']) is tuple  # backbones assert on tuples
    assert 'init_cfg' in cfg  # the input is left as it was


def test_sample(tmp_path, capsys):
    same = write(tmp_path / 'same_backbone.py', f"""
_base_ = '{STOCK}'
# Another checkpoint: the same backbone for the sweep (weights are never loaded).
model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint='other.pth')))
""")
    no_backbone = write(tmp_path / 'no_backbone.py',
                        "default_scope = 'mmdet'\nmodel = dict(type='RetinaNet')\n")
    broken = write(tmp_path / 'broken.py', "custom_imports = dict(imports=["
                   "'no_such_module_here'], allow_failed_imports=False)\n")
    toy = write(tmp_path / 'toy.py', """default_scope = 'mmdet'
model = dict(backbone=dict(type='CheckToyNet',
                           init_cfg=dict(type='Pretrained', checkpoint='/nowhere.pth')))
""")
    out = tmp_path / 'result.json'
    tool = load_tool('check_backbones')
    # The methods of every backbone family (LoRA and AdaptFormer, transformers only,
    # are left out: their refusals are tested in tests/test_lora.py and
    # tests/test_adaptformer.py).
    methods = ['--methods', 'frozen', 'protune', 'vpt']
    rc = tool.main([STOCK, same, no_backbone, broken, toy, '--max-size', '256',
                    '--jobs', '1', '--out', str(out), *methods])
    printed = capsys.readouterr().out
    assert rc == 1  # the toy fails ProTune

    result = json.loads(out.read_text())
    configs, backbones = result['configs'], result['backbones']
    # Two configs on one ResNet-18: one unique backbone, checked once.
    assert len(backbones) == 2
    assert configs[STOCK] == configs[same] == dict(status='checked', backbone=0)
    resnet, toy_bb = backbones
    assert resnet['type'] == 'mmdet.ResNet' and resnet['configs'] == [STOCK, same]
    assert 'init_cfg' not in resnet['config'] and resnet['size'] == 64
    assert all(r['ok'] for r in resnet['methods'].values())
    assert resnet['methods']['protune']['trainable'] > 0
    assert resnet['methods']['frozen']['trainable'] == 0

    assert configs[no_backbone]['status'] == 'no backbone'
    assert "model type 'RetinaNet'" in configs[no_backbone]['reason']
    assert configs[broken]['status'] == 'not loaded'
    assert 'no_such_module_here' in configs[broken]['reason']

    # The toy ran at 128 px (64 refused); ProTune is refused with the reason.
    assert toy_bb['size'] == 128 and toy_bb['type'] == 'mmdet.CheckToyNet'
    assert toy_bb['size_reason'] == ('at 64 px: ValueError: CheckToyNet needs at '
                                     'least 128 px, got (1, 3, 64, 64)')
    assert toy_bb['methods']['frozen']['ok'] and toy_bb['methods']['vpt']['ok']
    assert not toy_bb['methods']['protune']['ok']
    assert 'no stages are described' in toy_bb['methods']['protune']['failures'][0]

    s = result['summary']
    assert (s['configs'], s['checked'], s['no_backbone'], s['not_loaded'],
            s['not_built']) == (5, 3, 1, 1, 0)
    assert s['passing'] == dict(frozen=3, protune=2, vpt=3)
    assert s['by_type']['mmdet.ResNet']['passing'] == dict(frozen=2, protune=2, vpt=2)

    # One progress line per unique backbone, the table, one line per failing config.
    assert printed.count('[1/2] mmdet.ResNet (2 configs) 64 px') == 1
    assert '[2/2] mmdet.CheckToyNet (1 configs) 128 px' in printed
    lines = printed.splitlines()
    rows = {cells[0]: cells[1:] for cells in map(table_cells, lines) if cells}
    assert rows['backbone type'] == ['configs', 'unique', 'checked', 'frozen', 'protune',
                                     'vpt']
    assert rows['mmdet.CheckToyNet'] == ['1', '1', '1', '100%', '0%', '100%']
    assert rows['mmdet.ResNet'] == ['2', '1', '2', '100%', '100%', '100%']
    assert rows['all'] == ['3', '2', '3', '100%', '67%', '100%']
    failing = lines[lines.index('Failing configs (1):') + 1]
    assert failing.startswith(f'{toy} [mmdet.CheckToyNet]: protune: TypeError: no stages')
    assert f'  {broken}: ImportError: Failed to import custom modules' in printed
    assert result['jobs'] == 1 and result['cpu_seconds'] > 0

    # Two worker processes side by side: the same results, in the same order.
    out2 = tmp_path / 'result2.json'
    assert tool.main([STOCK, same, no_backbone, broken, toy, '--max-size', '256',
                      '--jobs', '2', '--out', str(out2), *methods]) == 1
    parallel = json.loads(out2.read_text())
    assert parallel['jobs'] == 2 and parallel['summary'] == result['summary']
    assert parallel['configs'] == configs
    for a, b in zip(parallel['backbones'], backbones):
        assert (a['id'], a['size'], a['error']) == (b['id'], b['size'], b['error'])
        assert {m: (r['ok'], r['failures']) for m, r in a['methods'].items()} == \
            {m: (r['ok'], r['failures']) for m, r in b['methods'].items()}


def test_bare_backbone_that_never_runs(tmp_path, capsys):
    toy = write(tmp_path / 'toy.py', """default_scope = 'mmdet'
model = dict(backbone=dict(type='CheckToyNet'))
""")
    out = tmp_path / 'result.json'
    rc = load_tool('check_backbones').main([toy, '--max-size', '64', '--out', str(out)])
    result = json.loads(out.read_text())
    assert rc == 0  # nothing checked failed: the backbone is counted apart
    assert result['configs'][toy]['status'] == 'not built'
    assert result['configs'][toy]['reason'].startswith(
        'does not run at 64 px: ValueError: CheckToyNet needs at least 128 px')
    assert result['summary']['not_built'] == 1 and result['summary']['checked'] == 0
    assert '1 configs whose bare backbone does not build or run:' in capsys.readouterr().out


def test_a_crash_is_reported_and_the_sweep_goes_on(tmp_path):
    crash = write(tmp_path / 'crash.py', """default_scope = 'mmdet'
model = dict(backbone=dict(type='CheckCrashNet'))
""")
    toy = write(tmp_path / 'toy.py', """default_scope = 'mmdet'
model = dict(backbone=dict(type='CheckToyNet'))
""")
    out = tmp_path / 'result.json'
    load_tool('check_backbones').main([crash, toy, '--methods', 'frozen', '--out',
                                       str(out)])
    configs = json.loads(out.read_text())['configs']
    assert configs[crash] == dict(status='not built', backbone=0, reason='the check '
                                  'process crashed (SIGABRT) building or running it')
    assert configs[toy]['status'] == 'checked'


def test_batchnorm_calibration_gives_a_random_backbone_trained_scales():
    """Random weights with init BN statistics explode or vanish in deep nets
    (Darknet-53: features of 1e3 at stage 4); calibrated statistics normalise each
    BN's output as a trained model's do, and the calibration leaves every other
    module in eval mode and every momentum as it was."""
    from protune_mm.check import calibrate_batchnorm
    torch.manual_seed(0)
    layers = []
    for _ in range(12):
        layers += [nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8, momentum=0.3),
                   nn.ReLU()]
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), *layers, nn.Dropout(0.5))
    x = torch.randn(2, 3, 16, 16)
    assert calibrate_batchnorm(net, (1, 3, 16, 16)) == 12
    assert not any(m.training for m in net.modules())
    assert all(m.momentum == 0.3 for m in net.modules() if isinstance(m, nn.BatchNorm2d))
    seen = []
    net[-3].register_forward_hook(lambda m, a, out: seen.append(out))  # last BN
    with torch.no_grad():
        net(x)
    mean, std = seen[0].mean((0, 2, 3)), seen[0].std((0, 2, 3))
    assert mean.abs().max() < 0.5 and ((std > 0.5) & (std < 2)).all(), (mean, std)


def test_check_passes_deep_random_backbones_that_overflow_uncalibrated():
    """Darknet-53 (4 stock configs) failed the gradient check before calibration:
    its stage-4 features reached 1e3 and the prompt gates saturated."""
    from protune_mm.check import check_method
    darknet = dict(type='mmdet.Darknet', depth=53, out_indices=(3, 4, 5))
    result = check_method(dict(type='protune_mm.ProTune', backbone=darknet),
                          (1, 3, 64, 64))
    assert result.ok, result.failures
