from setuptools import find_packages, setup

# torch / torchvision / mmcv are deliberately not pinned here: torch must match the
# user's CUDA, and mmcv must be compiled against that torch (see tools/setup_env.sh).
setup(
    name='protune_mm',
    version='0.1.0',
    description='Pro-tuning and VPT prompt tuning of frozen backbones for '
                'MMDetection 3 and MMSegmentation 1',
    packages=find_packages(include=['protune_mm', 'protune_mm.*']),
    python_requires='>=3.8',
    install_requires=[
        'mmengine==0.10.7', 'mmdet==3.3.0', 'mmsegmentation==1.2.2', 'mmpretrain==1.2.0',
        'timm>=1.0,<2', 'safetensors', 'ftfy', 'regex', 'imagecorruptions-imaug',
    ],
)
