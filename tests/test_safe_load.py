"""torch>=2.6 safe loading: mmengine checkpoints resume; other globals still refused."""
import os
import pickle

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

import protune_mm  # noqa: F401  (installs the allow-list)


class _Model(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, x, mode='loss'):
        x = torch.stack(x) if isinstance(x, (list, tuple)) else x
        return dict(loss=self.linear(x).pow(2).mean())


class _Data(Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return dict(x=torch.randn(2, generator=g))


def _runner(work_dir, max_iters, resume=False):
    return Runner(
        model=_Model(), work_dir=str(work_dir), resume=resume,
        train_dataloader=dict(dataset=_Data(), batch_size=2, collate_fn=dict(
            type='default_collate'), sampler=dict(type='DefaultSampler', shuffle=True)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2,
                                           by_epoch=False)),
        randomness=dict(seed=0))


def test_mmengine_checkpoint_loads_with_weights_only(tmp_path):
    _runner(tmp_path, 2).train()
    ckpt = torch.load(tmp_path / 'iter_2.pth', map_location='cpu', weights_only=True)
    assert ckpt['meta']['iter'] == 2
    assert ckpt['message_hub']['log_scalars']['train/loss'].mean() > 0


def test_resume_continues_with_optimizer_state(tmp_path):
    _runner(tmp_path, 2).train()
    saved = torch.load(tmp_path / 'iter_2.pth', map_location='cpu')
    runner = _runner(tmp_path, 4, resume=True)
    runner.train()
    assert runner.iter == 4
    state = runner.optim_wrapper.optimizer.state_dict()['state']
    # AdamW step counter continued from the checkpoint's 2 steps.
    assert int(state[0]['step']) == 4
    assert int(saved['optimizer']['state'][0]['step']) == 2


class _Evil:

    def __reduce__(self):
        return (os.system, ('echo pwned',))


def test_other_globals_still_refused(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'x': _Evil()}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)


def test_getattr_only_for_history_buffer_statistics(tmp_path):

    class _GetattrOnTensor:

        def __reduce__(self):
            return (getattr, (torch.zeros(1), 'numpy'))

    path = tmp_path / 'getattr.pth'
    torch.save({'x': _GetattrOnTensor()}, path)
    with pytest.raises(Exception, match='refusing getattr'):
        torch.load(path, weights_only=True)
