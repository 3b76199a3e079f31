"""tools/cuda_check.py: the no-GPU path (first line, skips, exit code 3, JSON), and
its training check on CPU in float32 (the same code its AMP runs use on a GPU)."""
import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import CONFIGS, REPO, config_path
from protune_mm.cli import cuda_check


@pytest.mark.skipif(torch.cuda.is_available(), reason='the machine has a GPU')
def test_without_gpu_says_so_and_exits_3(tmp_path):
    out = tmp_path / 'check.json'
    proc = subprocess.run([sys.executable, 'tools/cuda_check.py', '--work-dir', str(tmp_path),
                           '--out', str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == cuda_check.EXIT_SKIPPED == 3, proc.stderr[-2000:]
    first = proc.stdout.splitlines()[0]
    assert first.startswith('cuda_check: torch ') and 'NO GPU' in first
    result = json.loads(out.read_text())
    assert result['exit_code'] == 3 and result['environment']['gpus'] == []
    rows = {(r['check'], r['name']): r for r in result['checks']}
    # The CPU references of the three ops ran; everything needing a GPU says why it skipped.
    assert {r['status'] for r in result['checks']} == {'skipped'}
    assert 'CPU reference ran' in rows[('ops', 'RoIAlign')]['detail']
    assert len([r for r in result['checks'] if r['check'] == 'train']) == \
        len(cuda_check.configs()) == len(CONFIGS) >= 12
    assert 'no GPU visible' in proc.stdout.split('check ')[-1]


def test_benchmark_rows_name_configs_and_variants_that_exist():
    from protune_mm.benchmark.model import parse_variant
    from protune_mm.cli.config import config_file
    assert len(cuda_check.BENCHMARKS) == 5
    for name, config, size, batch, methods in cuda_check.BENCHMARKS:
        assert os.path.isfile(config_file(config)), (name, config)
        assert [parse_variant(m)['method'] for m in methods] == \
            ['full', 'frozen', 'protune', 'vpt'], name


def test_a_crash_in_mmcvs_collect_env_is_reported_not_fatal(monkeypatch):
    # Seen on a GPU machine: mmcv's CPU ops built against torch 2.11 segfault in
    # get_compiler_version; the check must say so and go on.
    from protune_mm.cli import cuda_env
    run = subprocess.run
    crash = subprocess.CompletedProcess([], -11, stdout='', stderr='Fatal Python error: '
                                        'Segmentation fault')
    monkeypatch.setattr(cuda_env.subprocess, 'run',
                        lambda cmd, **kw: crash if 'collect_env' in cmd[-1] else run(cmd, **kw))
    env = cuda_env.environment()
    assert env['mmcv_cuda'] is None and env['mmcv'] == __import__('mmcv').__version__
    assert 'exit -11' in env['mmcv_error'] and 'PyTorch' in env['versions']
    assert 'collect_env failed, exit -11: Fatal Python error' in cuda_env.describe(env)


def test_the_json_is_written_after_every_row(tmp_path):
    out = tmp_path / 'check.json'
    report = cuda_check.Report(str(out), dict(gpus=[]))
    report.add('train', 'a', 'ok', 'fine')
    first = json.loads(out.read_text())
    assert first['finished'] is False and [r['name'] for r in first['checks']] == ['a']
    report.add('train', 'b', 'FAILED', 'broken')
    report.save(finished=True)
    last = json.loads(out.read_text())
    assert last['finished'] is True and last['exit_code'] == cuda_check.EXIT_FAILED
    assert [r['status'] for r in last['checks']] == ['ok', 'FAILED']


def test_op_cases_agree_on_cpu():
    """The comparison itself: the CPU side against itself, and the focal-loss reference
    against mmdet's own formula."""
    from mmdet.models.losses.focal_loss import py_sigmoid_focal_loss
    for name, (inputs, cpu_fn, _) in cuda_check._op_cases().items():
        a, b = cpu_fn(*inputs), cpu_fn(*inputs)
        assert all(torch.equal(x, y) for x, y in zip(a, b)), name
    logits, labels = cuda_check._op_cases()['sigmoid_focal_loss'][0]
    one_hot = torch.nn.functional.one_hot(labels, 21)[:, :20].float()
    ref = py_sigmoid_focal_loss(logits, one_hot, reduction='none')
    assert torch.allclose(cuda_check.focal_loss_reference(logits, labels), ref, atol=1e-6)


@pytest.mark.slow
def test_training_check_on_cpu(tmp_path):
    data = cuda_check.synthetic_data(str(tmp_path / 'data'))
    status, detail, info = cuda_check.train_one(
        config_path('upernet_protune_r50_ade20k'), data, str(tmp_path / 'w'), None, 2)
    assert status == 'ok', detail
    assert info['frozen_tensors'] > 0 and not info['frozen_changed']
    assert info['prompts_moved'] > 0 and len(info['losses']) == 2


@pytest.mark.slow
def test_ddp_check_on_cpu_with_gloo(tmp_path):
    """Its DDP check (dumped scaled-down config, tools/dist_train.sh, logged losses),
    with gloo instead of NCCL."""
    data = cuda_check.synthetic_data(str(tmp_path / 'data'))
    status, detail, info = cuda_check.ddp_one(
        'upernet_protune_r50_ade20k', 1, data, str(tmp_path / 'w'), 2, backend='gloo')
    assert status == 'ok', detail
    assert len(info['losses']) == 2
