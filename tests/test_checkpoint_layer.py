"""protune_mm/checkpoint as a lower layer: what it imports, how it finds methods,
a pack read once and checked once per load, and files written by earlier code
(main at 532ab24) still loading."""
import ast
import glob
import io
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import tarfile
from collections import OrderedDict

import pytest
import torch
import torch.nn as nn

pytest.importorskip('mmdet')
pytest.importorskip('mmseg')

import protune_mm  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.runner.checkpoint import CheckpointLoader, load_checkpoint  # noqa: E402
from protune_mm import load_prompt_pack  # noqa: E402
from protune_mm.checkpoint import (META_KEY, CheckpointError, check_readable,  # noqa: E402
                                   find_methods, find_wrappers, frozen_identity,
                                   make_prompt_pack, save_prompt_pack, strip_frozen)
from protune_mm.engine import ensure_pack_hook  # noqa: E402
from protune_mm.checkpoint import record  # noqa: E402
from test_prompt_pack import (CLASSES, REPO, assert_same, build,  # noqa: E402
                              initialised_pack, make_runner, perturb, predict, quick_runner,
                              retinanet_cfg, save_pretrained, toy_net)

assert quick_runner  # a fixture, used by name
PACKAGE = osp.join(REPO, 'protune_mm')


# -- the layer -----------------------------------------------------------------------
def _imports(path):
    """Absolute names of the protune_mm modules ``path`` imports, anywhere in it."""
    module = osp.relpath(path, REPO)[:-len('.py')].replace(os.sep, '.')
    package = module.rsplit('.', 1)[0] if not module.endswith('__init__') else \
        module[:-len('.__init__')]
    names = []
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                parts = package.split('.')[:len(package.split('.')) - node.level + 1]
                base = '.'.join(parts + ([base] if base else []))
            names += [base] + [f'{base}.{a.name}' for a in node.names]
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names]
    return [n for n in names if n.startswith('protune_mm')]


def test_checkpoint_imports_nothing_above_it():
    files = glob.glob(osp.join(PACKAGE, 'checkpoint', '*.py'))
    above = ('protune_mm.methods', 'protune_mm.adapters', 'protune_mm.engine',
             'protune_mm.cli', 'protune_mm.ops')
    for path in files:
        bad = [n for n in _imports(path) if n.startswith(above)]
        assert not bad, (path, bad)
        # Registering with mmengine is engine's job, done explicitly.
        assert 'register_scheme' not in open(path).read(), path
    # policy and pack: one way only (pack uses policy).
    assert not [n for n in _imports(osp.join(PACKAGE, 'checkpoint', 'policy.py'))
                if 'pack' in n]
    for path in files + glob.glob(osp.join(PACKAGE, 'engine', '*.py')):
        assert len(open(path).read().splitlines()) <= 450, path


def test_the_pack_scheme_is_registered_by_importing_the_package():
    from protune_mm.engine.loader import PACK_SCHEME, load_pack_as_checkpoint
    assert CheckpointLoader._schemes[PACK_SCHEME] is load_pack_as_checkpoint
    protune_mm.engine.register_pack_scheme()  # again: idempotent
    assert CheckpointLoader._schemes[PACK_SCHEME] is load_pack_as_checkpoint


class _Method(nn.Module):
    """Anything with a recorded frozen set is a method to this layer."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Linear(2, 2)
        self.frozen_keys = frozenset({'backbone.weight', 'backbone.bias'})


def test_find_methods_by_their_frozen_set():
    model = nn.Sequential(OrderedDict(a=_Method(), b=nn.Linear(2, 2),
                                      c=nn.Sequential(_Method())))
    found = find_methods(model)
    assert [n for n, _ in found] == ['a', 'c.0']
    assert found[0][1] is model.a and find_wrappers is find_methods
    assert [n for n, _ in find_methods(model.a)] == ['']
    assert protune_mm.checkpoint.frozen_keys(model) == [
        'a.backbone.bias', 'a.backbone.weight', 'c.0.backbone.bias', 'c.0.backbone.weight']
    # A frozen_keys that is not a recorded frozenset does not make a method.
    other = nn.Linear(2, 2)
    other.frozen_keys = ['weight']
    assert find_methods(other) == []
    # The package's methods are found the same way.
    det = build('mmdet', retinanet_cfg())
    assert [(n, type(m).__name__) for n, m in find_methods(det)] == [('backbone', 'ProTune')]


def test_a_pack_from_a_ddp_state_dict_is_the_plain_one():
    model = perturb(build('mmdet', retinanet_cfg()), seed=1)
    plain = make_prompt_pack(model, 'task', model.state_dict())
    ddp = OrderedDict(('module.' + k, v) for k, v in model.state_dict().items())
    wrapped = make_prompt_pack(model, 'task', ddp)
    assert list(wrapped.tensors) == list(plain.tensors)
    assert_same(dict(wrapped.tensors), dict(plain.tensors))
    assert wrapped.metadata == plain.metadata


def test_an_unreadable_safetensors_file_is_one_line(tmp_path):
    model = perturb(build('mmdet', retinanet_cfg()), seed=1)
    path = str(tmp_path / 'p.safetensors')
    save_prompt_pack(make_prompt_pack(model, 'prompts'), path)
    check_readable(path)
    data = open(path, 'rb').read()
    for name, blob in (('cut.safetensors', data[:-10]), ('head.safetensors', data[:20]),
                       ('short.safetensors', b'\x10\x00\x00\x00\x00\x00\x00\x00{}'),
                       ('json.safetensors', b'\x04\x00\x00\x00\x00\x00\x00\x00{{{{'),
                       ('empty.safetensors', b'')):
        bad = str(tmp_path / name)
        open(bad, 'wb').write(blob)
        for read in (check_readable, protune_mm.read_prompt_pack,
                     protune_mm.checkpoint.read_pack_metadata):
            with pytest.raises(CheckpointError) as e:
                read(bad)
            msg = str(e.value)
            assert bad in msg and 'truncated' in msg and '\n' not in msg, msg
    with pytest.raises(FileNotFoundError, match='missing.safetensors'):
        check_readable(str(tmp_path / 'missing.safetensors'))


# -- read once, checked once ---------------------------------------------------------
class _Count:
    def __init__(self, target, name, monkeypatch):
        self.calls, real = [], getattr(target, name)

        def counted(*args, **kw):
            self.calls.append(args[0] if args else None)
            return real(*args, **kw)
        monkeypatch.setattr(target, name, counted)


def test_a_pack_is_read_once_and_checked_once(tmp_path, quick_runner, monkeypatch):
    """tools/test.py CONFIG TASK --prompts PROMPTS: the task pack is opened once
    (by the loader), the prompts pack once for its header (config surgery) and
    once to load it; each pack's method record and frozen identity are compared
    once."""
    import safetensors
    pretrained = save_pretrained(tmp_path / 'r18.pth', seed=42)
    _, prompts = initialised_pack(tmp_path, pretrained, 'prompts', seed=1)
    _, task = initialised_pack(tmp_path, pretrained, 'task', seed=2)
    opened = _Count(safetensors, 'safe_open', monkeypatch)
    cfg = Config(dict(custom_hooks=[]))
    ensure_pack_hook(cfg, prompts=prompts)
    assert opened.calls == [prompts]
    assert cfg.custom_hooks[0]['prompts'] == prompts

    model = toy_net(pretrained)
    # Every comparison of a pack's record with a method, and every identity
    # check, goes through these two.
    compared = _Count(record, 'method_config_problems', monkeypatch)
    hashed = _Count(record, 'frozen_identity', monkeypatch)
    runner, _ = make_runner(tmp_path / 'w', model, max_iters=1, load_from=task,
                            hooks=cfg.custom_hooks)  # as tools/test.py builds it
    runner.train()
    assert sorted(opened.calls) == sorted([prompts, prompts, task])
    assert len(compared.calls) == 2 and len(hashed.calls) == 2  # the task pack, the prompts

    # Without the hook (load_checkpoint, inferencers) the policy checks it, once.
    compared.calls.clear(), hashed.calls.clear()
    load_checkpoint(model, task)
    assert len(compared.calls) == 1 and len(hashed.calls) == 1

    # The hook's check stands for this load only: a second load is checked again.
    other = save_pretrained(tmp_path / 'other.pth', seed=43)
    with torch.no_grad():
        model.backbone.backbone.load_state_dict(torch.load(other))
    with pytest.raises(CheckpointError, match='trained on other frozen weights'):
        load_checkpoint(model, task)


# -- the on-disk formats -------------------------------------------------------------
#: what main at 532ab24 writes; packs and checkpoints written by it must load.
PACK_METADATA_KEYS = {'format', 'format_version', 'kind', 'method', 'method_config',
                      'backbone_type', 'backbone_class', 'backbone_config',
                      'frozen_sha256', 'prefix', 'classes', 'protune_mm_version'}


def test_the_formats_are_those_of_earlier_files(tmp_path):
    from safetensors import safe_open
    model = perturb(build('mmdet', retinanet_cfg()), seed=1)
    path = str(tmp_path / 'p.safetensors')
    save_prompt_pack(make_prompt_pack(model, 'task'), path)
    with safe_open(path, 'pt') as f:
        raw = f.metadata()
    assert set(raw) == PACK_METADATA_KEYS
    assert raw['format'] == '"protune_mm.prompt_pack"' and raw['format_version'] == '1'
    assert json.loads(raw['prefix']) == 'backbone' and json.loads(raw['kind']) == 'task'
    # A state dict records the method at its own entry of _metadata.
    state = model.state_dict()
    record = state._metadata['backbone'][META_KEY]
    assert set(record) == {'method', 'method_config'} and record['method'] == 'protune'
    strip_frozen(state, model)
    assert set(state._metadata['backbone'][META_KEY]) == {
        'method', 'method_config', 'frozen_sha256'}
    assert state._metadata['backbone'][META_KEY]['frozen_sha256'] == \
        frozen_identity(model.backbone)


OLD = '532ab24'
WRITE_WITH_OLD_CODE = r'''
import ast, os, sys, torch
import protune_mm
assert protune_mm.__file__.startswith(sys.argv[1]), protune_mm.__file__
from protune_mm.checkpoint import pack as pp
from protune_mm.checkpoint.policy import strip_frozen
sys.path.insert(0, os.path.join(sys.argv[1], 'tests'))
from test_prompt_pack import MODELS, build, perturb, predict
out = sys.argv[2]
for name in sys.argv[3:]:
    scope, cfg = MODELS[name]
    model = perturb(build(scope, cfg), seed=1)
    model.dataset_meta = dict(classes=('cat', 'dog', 'bird'))
    for kind in ('task', 'prompts'):
        pp.save_prompt_pack(pp.make_prompt_pack(model, kind),
                            os.path.join(out, f'{name}_{kind}.safetensors'))
    meta = dict(dataset_meta=model.dataset_meta, iter=1)
    torch.save(dict(meta=meta, state_dict=model.state_dict()),
               os.path.join(out, f'{name}_full.pth'))
    small = model.state_dict()
    strip_frozen(small, model)
    torch.save(dict(meta=meta, state_dict=small), os.path.join(out, f'{name}_small.pth'))
    torch.save(predict(model), os.path.join(out, f'{name}_out.pth'))
    with open(os.path.join(out, f'{name}_cfg.txt'), 'w') as f:
        f.write(repr(MODELS[name]))
'''


def _old_tree(root):
    git = shutil.which('git')
    if git is None or not osp.isdir(osp.join(REPO, '.git')) and not osp.isfile(
            osp.join(REPO, '.git')):
        pytest.skip('needs the git history of the repository')
    if subprocess.run([git, '-C', REPO, 'cat-file', '-e', OLD + '^{commit}'],
                      capture_output=True).returncode:
        pytest.skip(f'commit {OLD} is not in this clone')
    tar = subprocess.run([git, '-C', REPO, 'archive', OLD, 'protune_mm',
                          'tests/test_prompt_pack.py'], capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as t:
        t.extractall(root, **({'filter': 'data'} if hasattr(tarfile, 'data_filter') else {}))
    return str(root)


@pytest.mark.slow
def test_files_written_by_earlier_code_still_load(tmp_path):
    """Packs (both kinds) and full and small checkpoints written by main at
    532ab24 (run from a git archive of it) load into models built by this code,
    giving the same tensors and outputs."""
    old = _old_tree(tmp_path / 'old')
    out = tmp_path / 'files'
    out.mkdir()
    names = ['det_retinanet_protune', 'seg_fcn_vpt_vit']
    env = dict(os.environ, PYTHONPATH=old)
    proc = subprocess.run([sys.executable, '-c', WRITE_WITH_OLD_CODE, old, str(out),
                           *names], cwd=str(tmp_path), env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in names:
        files = {k: str(out / f'{name}_{k}') for k in (
            'task.safetensors', 'prompts.safetensors', 'full.pth', 'small.pth')}
        scope, cfg = ast.literal_eval(open(out / f'{name}_cfg.txt').read())
        full = torch.load(files['full.pth'], weights_only=True)['state_dict']
        expected = torch.load(str(out / f'{name}_out.pth'), weights_only=True)

        def fresh():
            """This code's model with the old file's frozen backbone, the rest
            at another init."""
            model = perturb(build(scope, cfg), seed=5)
            prefix, method = protune_mm.checkpoint.pack.the_wrapper(model)
            model.load_state_dict({prefix + k: full[prefix + k] for k in method.frozen_keys},
                                  strict=False)
            return model

        def same_as_old(model):
            state = model.state_dict()
            assert state.keys() == full.keys()
            assert_same(dict(state), dict(full))
            outputs = predict(model)
            assert len(outputs) == len(expected)
            for a, b in zip(outputs, expected):
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)

        model = fresh()
        load_checkpoint(model, files['full.pth'])
        same_as_old(model)
        model = fresh()
        load_checkpoint(model, files['small.pth'])
        same_as_old(model)
        model = fresh()
        load_checkpoint(model, files['task.safetensors'])  # the loader scheme
        same_as_old(model)
        model = fresh()
        result = load_prompt_pack(model, files['task.safetensors'])
        assert result.frozen_match and result.metadata['classes'] == list(CLASSES)
        same_as_old(model)
        model = fresh()
        load_checkpoint(model, files['full.pth'])
        perturb(model, seed=6, only_prompts=True)
        assert load_prompt_pack(model, files['prompts.safetensors']).frozen_match
        same_as_old(model)
