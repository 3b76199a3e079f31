"""tools/benchmark.py and tools/benchmark_backbone.py end to end at toy scale: every
variant runs in its own process and lands in the JSON with its measures, the ratios
are to the first variant, the parameter counts are those each method implies, and
the chart is drawn. Nothing here is a timing claim."""
import json
import os.path as osp
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


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
         'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py', '--methods', 'full', 'lora'],
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr
    assert "--methods: unknown method 'lora'" in proc.stderr and "'protune'" in proc.stderr


def test_backbone_benchmark_prints_every_variant():
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'benchmark_backbone.py'),
         '--depth', '18', '--size', '64', '--rounds', '2', '--threads', '1'],
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {line.split()[0]: line.split()[1:] for line in proc.stdout.splitlines()[2:]}
    assert list(rows) == ['full', 'frozen', 'frozen+me', 'protune+me', 'protune_s123+me']
    assert rows['full'][1] == '1.000' and rows['full'][3] == '1.000'
