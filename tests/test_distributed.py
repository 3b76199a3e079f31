"""Two-process data-parallel training on CPU (gloo) through tools/dist_train.sh
(torchrun + tools/train.py --launcher pytorch), with DDP's default
find_unused_parameters=False."""
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from conftest import REPO, config_path, shrink

pytestmark = pytest.mark.slow  # two training processes

# A hook the training processes import (via custom_imports): each rank saves what
# it trained, and what it saw, at the end of the run.
PROBE = '''
import torch
from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class DistProbeHook(Hook):
    def before_train(self, runner):
        self.model = runner.model
        self.initial = self._trainable()
        self.img_ids = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.img_ids += [s.img_id for s in data_batch['data_samples']]

    def _trainable(self):
        return {n: p.detach().clone() for n, p in self.model.module.named_parameters()
                if p.requires_grad}

    def after_run(self, runner):
        torch.save(dict(
            world_size=get_world_size(), iter=runner.iter, img_ids=self.img_ids,
            wrapper=type(self.model).__name__,
            find_unused_parameters=self.model.find_unused_parameters,
            initial=self.initial, final=self._trainable()),
            f'{runner.work_dir}/rank{get_rank()}.pth')
'''


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.parametrize('returned', [4, 3], ids=['all-stages', 'last-stage-unreturned'])
def test_two_cpu_processes_train_in_step(synthetic_data, tmp_path, returned):
    """With ``returned=3`` the backbone's last stage reaches no output: its prompt
    is not created, so DDP (find_unused_parameters=False) does not fail at
    iteration 2 on a parameter without gradient."""
    (tmp_path / 'probe').mkdir()
    (tmp_path / 'probe' / 'dist_probe.py').write_text(PROBE)

    work_dir = str(tmp_path / 'work')
    cfg = shrink(Config.fromfile(config_path('mask_rcnn_protune_r50')), synthetic_data,
                 work_dir)
    cfg.custom_imports = dict(imports=['protune_mm', 'dist_probe'],
                              allow_failed_imports=False)
    cfg.custom_hooks.append(dict(type='DistProbeHook'))
    # 4 images, 2 ranks, 1 image per rank and step: 2 synchronised steps.
    cfg.train_dataloader.batch_size = 1
    if returned < 4:
        cfg.model.backbone.backbone.out_indices = tuple(range(returned))
        cfg.model.neck.in_channels = cfg.model.neck.in_channels[:returned]
        cfg.model.backbone.pop('stages')  # default: the stages that reach an output
    assert not cfg.get('find_unused_parameters', False)
    path = str(tmp_path / 'mask_rcnn_protune_small.py')
    cfg.dump(path)

    # tools/dist_train.sh runs `python -m torch.distributed.run ... --launcher
    # pytorch`; `python` is this interpreter.
    env = dict(os.environ, OMP_NUM_THREADS='1', PORT=str(_free_port()),
               PATH=os.pathsep.join([osp.dirname(sys.executable),
                                     os.environ.get('PATH', '')]),
               PYTHONPATH=os.pathsep.join([str(tmp_path / 'probe'),
                                           os.environ.get('PYTHONPATH', '')]))
    proc = subprocess.run(
        ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), path, '2',
         '--work-dir', work_dir, '--cfg-options', 'env_cfg.dist_cfg.backend=gloo'],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-4000:])

    ranks = [torch.load(osp.join(work_dir, f'rank{r}.pth'), weights_only=False)
             for r in (0, 1)]
    for r in ranks:
        assert r['world_size'] == 2 and r['iter'] == 2
        assert r['wrapper'] == 'MMDistributedDataParallel'
        assert r['find_unused_parameters'] is False
    # Each rank trained on its own half of the data...
    assert len(ranks[0]['img_ids']) == len(ranks[1]['img_ids']) == 2
    assert not set(ranks[0]['img_ids']) & set(ranks[1]['img_ids'])
    # ...yet both hold the same weights before and after: gradients were averaged.
    first, second = ranks
    assert first['final'].keys() == second['final'].keys()
    prompts = [k for k in first['final'] if k.startswith('backbone.prompts.')]
    assert {k.split('.')[2] for k in prompts} == {str(i) for i in range(returned)}
    assert prompts and not any(k.startswith('backbone.backbone.') for k in first['final'])
    for key in first['final']:
        assert torch.equal(first['initial'][key], second['initial'][key]), key
        assert torch.equal(first['final'][key], second['final'][key]), key
    assert any(not torch.equal(first['initial'][k], first['final'][k]) for k in prompts)
    # Rank 0 wrote the (small) checkpoint.
    ckpt = torch.load(osp.join(work_dir, 'epoch_1.pth'), weights_only=False)
    assert not any(k.startswith('backbone.backbone.') for k in ckpt['state_dict'])
    for key in prompts:
        assert torch.equal(ckpt['state_dict'][key], first['final'][key])
