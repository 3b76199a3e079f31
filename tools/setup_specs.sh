# What tools/setup_env.sh installs, in one place, so tools/wheelhouse.sh downloads exactly that.
# Sourced, not run.
# shellcheck disable=SC2034
MMCV_VERSION=2.1.0
TORCH_SPEC="${PROTUNE_TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}"
# torch 2.14 wants setuptools>=77; mmcv's setup.py imports pkg_resources (gone in >=81).
BUILD_SPECS=('setuptools>=77,<81' wheel ninja)
# mmcv's own runtime requirements (its wheel is installed with --no-deps).
MMCV_DEPS=(addict 'mmengine==0.10.7' numpy packaging Pillow pyyaml yapf opencv-python)
# mmpretrain 1.2.0 (its last release, mmcv <2.4): ConvNeXt / PoolFormer of the stock configs.
STACK_SPECS=('mmengine==0.10.7' 'mmdet==3.3.0' 'mmsegmentation==1.2.2' 'mmpretrain==1.2.0'
  ftfy regex 'timm>=1.0,<2'
  pycocotools safetensors matplotlib pytest
  'imagecorruptions-imaug==1.1.5')  # tools/test_robustness.py
