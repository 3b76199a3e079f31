"""tools/benchmark.py and tools/benchmark_backbone.py end to end at toy scale: every
variant runs in its own process and lands in the JSON with its measures, the ratios
are to the first variant, the parameter counts are those each method implies, and
the chart is drawn; and their helpers (variant specs, model configs, medians,
ratios) on their own. Nothing here is a timing claim."""
import json
import os.path as osp
import re
import subprocess
import sys

import pytest

from conftest import REPO
from protune_mm.benchmark import backbone as bench_backbone
from protune_mm.benchmark import model as bench
from protune_mm.benchmark.batch import parse_size, synthetic_batch
from protune_mm.benchmark.report import aggregate, format_table
from protune_mm.cli.benchmark import parse_args
from protune_mm.sweep.methods import method_of, method_types


def table_cells(line):
    """The cells of a printed table row; [] for any other line."""
    if not line.startswith('|'):
        return []
    return [c.strip() for c in line.strip('|').split('|')]


@pytest.mark.slow
def test_benchmark_writes_every_variant_with_its_measures(tmp_path):
    out = tmp_path / 'bench.json'
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'benchmark.py'),
         'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py',
         '--methods', 'full', 'frozen', 'protune+me', 'vpt',
         '--size', '64', '--warmup', '1', '--steps', '1', '--infer-steps', '1',
         '--threads', '1', '--out', str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    med = data['median']
    assert list(med) == ['full', 'frozen', 'protune+me', 'vpt']
    assert data['info']['reference'] == 'full'
    for label, r in med.items():
        for key in ('trainable_params', 'checkpoint_bytes', 'task_pack_bytes',
                    'step_time_s', 'peak_mem_bytes', 'infer_latency_s'):
            assert r[key] > 0, (label, key)
    full, frozen, protune, vpt = (med[k] for k in ('full', 'frozen', 'protune+me', 'vpt'))
    # Head-only trains the heads only; the prompts add exactly their own parameters.
    assert frozen['trainable_params'] < full['trainable_params']
    assert frozen['backbone_params'] == full['backbone_params'] > 0
    assert frozen['prompt_params'] == 0 < vpt['prompt_params'] < protune['prompt_params']
    assert protune['trainable_params'] == frozen['trainable_params'] + protune['prompt_params']
    assert protune['memory_efficient'] and not vpt['memory_efficient']
    # A task pack holds no frozen backbone: smaller than the full checkpoint.
    assert frozen['task_pack_bytes'] < frozen['checkpoint_bytes']
    assert full['task_pack_bytes'] == full['checkpoint_bytes']
    assert (tmp_path / 'bench.png').stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ['bench.json', 'bench.png']
    assert 'ratio to' in data['table']


def test_benchmark_refuses_bad_options():
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'benchmark.py'),
         'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py', '--methods', 'full', 'no_such_method'],
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr
    assert "--methods: unknown method 'no_such_method'" in proc.stderr
    assert "'protune'" in proc.stderr


@pytest.mark.slow
def test_backbone_benchmark_prints_every_variant():
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'benchmark_backbone.py'),
         '--depth', '18', '--size', '64', '--rounds', '2', '--threads', '1'],
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {cells[0]: cells[1:] for cells in map(table_cells, proc.stdout.splitlines())
            if cells}
    assert list(rows) == ['variant', 'full', 'frozen', 'frozen+me', 'protune+me',
                          'protune_s123+me']
    assert rows['variant'] == ['train s', 'train x', 'infer s', 'infer x']
    assert rows['full'][1] == '1.000' and rows['full'][3] == '1.000'


# ----------------------------------------------------------------------------------
# The helpers, without running a model.

R50 = dict(type='ResNet', depth=50, norm_cfg=dict(type='SyncBN', requires_grad=True),
           init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50'))


def _config(backbone):
    from mmengine.config import Config
    return Config(dict(model=dict(type='RetinaNet', backbone=backbone,
                                  neck=dict(type='FPN', norm_cfg=dict(type='SyncBN')))))


def test_parse_variant_reads_label_method_and_options():
    assert bench.parse_variant('protune') == dict(
        label='protune', method='protune', memory_efficient=False, kwargs={})
    assert bench.parse_variant('pt_s12=protune+me:{"stages": [1, 2]}') == dict(
        label='pt_s12', method='protune', memory_efficient=True, kwargs={'stages': [1, 2]})
    assert bench.parse_variant('vpt+me')['label'] == 'vpt+me'
    # An '=' inside the JSON is neither the label's nor the method's.
    assert bench.parse_variant('vpt:{"location": "a=b"}')['label'] == 'vpt'
    assert bench.parse_variant('v=vpt:{"location": "a=b"}') == dict(
        label='v', method='vpt', memory_efficient=False, kwargs={'location': 'a=b'})
    for spec, words in (('no_such_method', "unknown method 'no_such_method'"),
                        ('full+me', "'+me' needs a frozen backbone"),
                        ('vpt:{"num_tokens": 5', 'bad JSON'),
                        ('vpt:[5]', 'must be a JSON object')):
        with pytest.raises(ValueError, match=re.escape(words)):
            bench.parse_variant(spec)


def test_model_config_wraps_the_stock_backbone_with_random_init():
    cfg = _config(R50)
    full = bench.model_config(cfg, bench.parse_variant('full'))
    assert full['backbone']['type'] == 'ResNet' and full['backbone']['init_cfg'] is None
    # One process has no process group: SyncBN becomes BN, in the backbone and the neck.
    assert full['backbone']['norm_cfg']['type'] == full['neck']['norm_cfg']['type'] == 'BN'
    vpt = bench.model_config(cfg, bench.parse_variant('vpt+me:{"num_tokens": 5}'))
    # VPT's own defaults: it resolves deep=False (pad prompts) on a ResNet itself.
    assert vpt['backbone'] == dict(type='protune_mm.VPT', backbone=full['backbone'],
                                   num_tokens=5, memory_efficient=True)
    from mmengine.registry import MODELS, DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet'):
        built = MODELS.build(dict(vpt['backbone'], backbone=dict(full['backbone'], depth=18)))
    assert built.mechanism.name == 'pad' and built.deep is False
    assert cfg.model.backbone.init_cfg.type == 'Pretrained'  # the config is not edited


def test_the_variants_are_the_registered_methods():
    import protune_mm
    assert method_types() == {'adaptformer': 'protune_mm.AdaptFormer',
                              'frozen': 'protune_mm.Frozen', 'lora': 'protune_mm.LoRA',
                              'protune': 'protune_mm.ProTune', 'vpt': 'protune_mm.VPT'}
    assert bench.variant_methods() == ['adaptformer', 'frozen', 'full', 'lora', 'protune',
                                       'vpt']
    # A wrapper is known by what it is, however the config names it.
    for type_ in ('protune_mm.ProTune', 'ProTune', protune_mm.ProTune):
        assert method_of(type_) == 'protune'
    for type_ in ('ResNet', 'mmdet.ResNet', 'nowhere.ResNet', protune_mm.TimmViT):
        assert method_of(type_) is None
    cfg = _config(dict(type=protune_mm.VPT, backbone=R50, num_tokens=3))
    vpt = bench.model_config(cfg, bench.parse_variant('vpt'))
    assert vpt['backbone']['type'] == 'protune_mm.VPT' and vpt['backbone']['num_tokens'] == 3
    assert vpt['backbone']['backbone']['type'] == 'ResNet'


def test_model_config_of_a_prompt_config_keeps_its_options_for_its_own_method():
    cfg = _config(dict(type='protune_mm.ProTune', backbone=R50, stages=[1, 2]))
    same = bench.model_config(cfg, bench.parse_variant('protune'))
    assert same['backbone']['type'] == 'protune_mm.ProTune'
    assert same['backbone']['stages'] == [1, 2]
    assert same['backbone']['backbone']['init_cfg'] is None
    other = bench.model_config(cfg, bench.parse_variant('frozen'))
    assert other['backbone']['type'] == 'protune_mm.Frozen' and 'stages' not in other['backbone']
    assert bench.model_config(cfg, bench.parse_variant('full'))['backbone']['type'] == 'ResNet'


def test_aggregate_takes_medians_over_rounds_in_first_seen_order():
    runs = [dict(variant='full', step_time_s=s, peak_mem_bytes=m, round=r)
            for r, (s, m) in enumerate([(3.0, 10), (1.0, 30), (2.0, 20)])]
    runs.insert(1, dict(variant='frozen', step_time_s=1.5, peak_mem_bytes=5, round=0))
    agg = aggregate(runs)
    assert list(agg) == ['full', 'frozen']
    assert (agg['full']['step_time_s'], agg['full']['peak_mem_bytes']) == (2.0, 20)
    assert (agg['full']['rounds'], agg['frozen']['rounds']) == (3, 1)
    assert 'infer_latency_s' not in agg['full']  # not measured (--no-timing)


def test_format_table_gives_ratios_to_the_reference():
    agg = {'full': dict(trainable_params=4e6, step_time_s=2.0),
           'frozen': dict(trainable_params=1e6, step_time_s=1.0)}
    lines = format_table(agg, 'full').splitlines()
    rows = [cells for cells in map(table_cells, lines) if cells]
    assert rows == [['variant', 'trainable', 'step s', 'trainable x', 'step s x'],
                    ['full', '4.00M', '2.000', '1.000', '1.000'],
                    ['frozen', '1.00M', '1.000', '0.250', '0.500']]
    assert lines[-1] == "(x = ratio to 'full')"
    agg['full']['step_time_s'] = 0.0  # no ratio to a zero
    rows = [cells for cells in map(table_cells, format_table(agg, 'full').splitlines())
            if cells]
    assert rows[2][-1] == '-'


def test_backbone_ratios_are_medians_of_per_round_ratios_without_warmup():
    times = {'full': [(100.0, 100.0), (1.0, 2.0), (2.0, 2.0), (4.0, 2.0)],
             'frozen': [(0.1, 0.1), (0.5, 1.0), (2.0, 3.0), (2.0, 2.0)]}
    out = bench_backbone.summarise(times)
    assert out['full'] == (2.0, 1.0, 2.0, 1.0)
    # Train ratios per round 0.5, 1.0, 0.5: median 0.5, where the ratio of the
    # medians (2.0 / 2.0) would say 1.0.
    assert out['frozen'] == (2.0, 0.5, 2.0, 1.0)
    from protune_mm.cli.benchmark_backbone import format_table as backbone_table
    rows = [cells for cells in map(table_cells, backbone_table(out).splitlines()) if cells]
    assert rows == [['variant', 'train s', 'train x', 'infer s', 'infer x'],
                    ['full', '2.000', '1.000', '2.000', '1.000'],
                    ['frozen', '2.000', '0.500', '2.000', '1.000']]


def test_size_is_square_or_width_x_height():
    assert parse_size('320') == (320, 320) and parse_size('1333x800') == (1333, 800)
    assert parse_args(['cfg', '--size', '1333x800']).size == '1333x800'
    with pytest.raises(ValueError):
        parse_args(['cfg', '--size', '0x800'])
    det = synthetic_batch('det', 1, '96x64', 3)
    assert det['inputs'][0].shape == (3, 64, 96)
    boxes = det['data_samples'][0].gt_instances.bboxes
    assert (boxes[:, 2] <= 95).all() and (boxes[:, 3] <= 63).all()
    assert det['data_samples'][0].gt_instances.masks.masks.shape[1:] == (64, 96)
    # A plain N is still a square.
    assert synthetic_batch('det', 1, 64, 3)['inputs'][0].shape == (3, 64, 64)
