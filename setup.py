import os.path as osp
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

#: Shipped inside the package as protune_mm/.mim/ (mmdet's layout, see its setup.py's
#: add_mim_extension), where protune_mm.cli.config.shipped() finds them.
MIM = ('configs', 'tools')


class BuildPyWithMim(build_py):
    """build_py, plus configs/ and tools/ copied into the built package.

    Copied into the build folder, not the source tree (mmdet copies into its source
    package), so a checkout never holds a stale copy; an editable install reads the
    checkout's own folders.
    """

    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):
            return
        here = osp.dirname(osp.abspath(__file__))
        for name in MIM:
            target = osp.join(self.build_lib, 'protune_mm', '.mim', name)
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(osp.join(here, name), target,
                            ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))


# torch / torchvision / mmcv are deliberately not pinned here: torch must match the
# user's CUDA, and mmcv must be compiled against that torch (see tools/setup_env.sh).
setup(
    name='protune_mm',
    version='0.1.0',
    description='Pro-tuning and VPT prompt tuning of frozen backbones for '
                'MMDetection 3 and MMSegmentation 1',
    packages=find_packages(include=['protune_mm', 'protune_mm.*']),
    cmdclass={'build_py': BuildPyWithMim},
    python_requires='>=3.8',
    install_requires=[
        'mmengine==0.10.7', 'mmdet==3.3.0', 'mmsegmentation==1.2.2', 'mmpretrain==1.2.0',
        'timm>=1.0,<2', 'safetensors', 'ftfy', 'regex', 'imagecorruptions-imaug',
        'prettytable>=3.12',  # HRuleStyle / VRuleStyle
    ],
)
