"""An installed (non-editable) protune_mm runs its command lines from outside the
repository: setup.py ships configs/ and tools/ inside the package (protune_mm/.mim/,
the OpenMMLab layout) and the command lines find them there, not in a checkout."""
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest

from conftest import CONFIGS, REPO

pytestmark = pytest.mark.slow  # pip builds and installs the package


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """``pip install --target`` of a copy of the sources (the build leaves build/ and
    an egg-info in the folder it builds from); returns (target, a cwd outside both)."""
    root = tmp_path_factory.mktemp('installed')
    src = root / 'src'
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc', '.mim')
    for name in ('protune_mm', 'configs', 'tools'):
        shutil.copytree(osp.join(REPO, name), src / name, ignore=ignore)
    shutil.copy(osp.join(REPO, 'setup.py'), src / 'setup.py')
    target = root / 'site'
    proc = subprocess.run(
        [sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--no-build-isolation',
         '--no-index', '--target', str(target), str(src)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    shutil.rmtree(src)  # nothing of the sources is left but what was installed
    cwd = root / 'elsewhere'
    cwd.mkdir()
    return str(target), str(cwd)


def run(installed, *args, timeout=300):
    target, cwd = installed
    # protune_mm from the target only; the venv still provides mmdet, mmseg, torch.
    env = dict(os.environ, PYTHONPATH=target)
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


def test_the_package_ships_its_configs_and_tools(installed):
    target, _ = installed
    out = run(installed, '-c', '\n'.join([
        'import protune_mm',
        'from protune_mm.cli import cuda_check',
        'from protune_mm.cli.config import config_file, shipped',
        'print(protune_mm.__file__)',
        "print(config_file('protune_mm::quickstart/upernet_protune_r50_synthetic.py'))",
        "print(shipped('tools', 'dist_train.sh'))",
        'print(len(cuda_check.configs()))',
    ])).splitlines()
    package = osp.join(target, 'protune_mm')
    assert out[0] == osp.join(package, '__init__.py')
    assert out[1] == osp.join(package, '.mim', 'configs', 'quickstart',
                              'upernet_protune_r50_synthetic.py')
    assert out[2] == osp.join(package, '.mim', 'tools', 'dist_train.sh')
    assert int(out[3]) == len(CONFIGS) >= 12
    assert not osp.exists(osp.join(target, 'configs'))  # inside the package only


def test_command_lines_run_from_outside_the_repository(installed):
    target, cwd = installed
    assert 'usage:' in run(installed, '-m', 'protune_mm.cli.quickstart', '--help')
    # A shipped config, through its relative _base_ and mmseg's own.
    out = run(installed, '-m', 'protune_mm.cli.param_report',
              'protune_mm::quickstart/upernet_protune_r50_synthetic.py')
    assert 'frozen backbone' in out and 'prompts pack' in out
    # The shipped tools/ scripts run too (mim's layout); nothing was written in cwd.
    assert 'usage:' in run(installed, osp.join(target, 'protune_mm', '.mim', 'tools',
                                               'train.py'), '--help')
    assert os.listdir(cwd) == []
