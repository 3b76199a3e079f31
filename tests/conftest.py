"""What several test files share: the repository paths, the command-line tools as
modules, the tiny synthetic COCO / ADE20K data and the scaling-down of real configs.

Test files import the plain names (``from conftest import REPO``); pytest puts
tests/ on ``sys.path`` (rootdir-relative imports, no ``__init__.py``).
"""
import glob
import importlib.util
import os.path as osp

import pytest

# Shrinking a real config to a few CPU seconds (shared with tools/cuda_check.py).
from protune_mm.cli.scaled_config import shrink, shrink_model, sync_bn_to_bn  # noqa: F401

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
# The method configs (configs/quickstart/ holds the synthetic-data demo ones).
CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', 'det', '*.py')) +
                 glob.glob(osp.join(REPO, 'configs', 'seg', '*.py')))


def config_path(name):
    """configs/{det,seg}/<name>.py"""
    sub = 'seg' if name.endswith('_ade20k') else 'det'
    return osp.join(REPO, 'configs', sub, name + '.py')


def load_tool(name):
    """tools/<name>.py as a module (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        f'protune_tools_{name}', osp.join(REPO, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='session')
def synthetic_data(tmp_path_factory):
    """The project's synthetic COCO / ADE20K sets, tiny (4 train, 2 val, 128 px):
    ``dict(coco=data_root, ade=data_root)`` as the stock dataset configs want them."""
    from protune_mm.cli.scaled_config import synthetic_data as make
    return make(str(tmp_path_factory.mktemp('data')))


@pytest.fixture(autouse=True)
def restore_visualizers():
    """Runners and inferencers register process-global visualizer instances, and a
    later runner's hooks take the last one created (mmengine's
    get_current_instance): a seg visualizer left by one test breaks the next det
    test. Each test gets back the instances it started with."""
    from mmengine.visualization import Visualizer
    classes = [Visualizer] + _subclasses(Visualizer)
    saved = [(c, dict(c._instance_dict)) for c in classes]
    yield
    for c in [Visualizer] + _subclasses(Visualizer):
        c._instance_dict.clear()
    for c, d in saved:
        c._instance_dict.update(d)


def _subclasses(cls):
    return [s for c in cls.__subclasses__() for s in [c] + _subclasses(c)]
