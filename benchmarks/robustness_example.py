"""The README's robustness example (section Robustness): a Pro-tuned UPerNet, the
real config shrunk as the tests shrink it (frozen ResNet-18 at a fixed random
init saved as its 'pretrained' file, 128 px, protune_mm.cli.scaled_config.shrink), trained
briefly on synthetic ADE20K-layout data; writes its config, small checkpoint and
task pack, then prints the tools/test_robustness.py commands.

    python benchmarks/robustness_example.py [--work-dir work_dirs/robustness_example] [--iters 20]
"""
import argparse
import copy
import glob
import os
import os.path as osp

import torch
from mmengine.config import Config

from protune_mm.cli.scaled_config import shrink

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def config_path(name):
    return osp.join(REPO, 'configs', 'seg' if 'upernet' in name else 'det', name + '.py')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/robustness_example')
    parser.add_argument('--iters', type=int, default=20)
    args = parser.parse_args(argv)
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    from mmseg.registry import MODELS
    from protune_mm import export_prompt_pack
    from protune_mm.data import make_ade20k
    work = osp.abspath(args.work_dir)
    data = osp.join(work, 'data', 'ade')
    if not osp.exists(data):
        make_ade20k(data, num_train=32, num_val=8, image_size=128, seed=0)
    cfg = shrink(Config.fromfile(config_path('upernet_protune_r50_ade20k')),
                 dict(ade=osp.join(data, 'ADEChallengeData2016')), osp.join(work, 'run'),
                 iters=args.iters)
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False,
                                begin=0, end=5)]
    cfg.optim_wrapper.optimizer.lr = 1e-3
    cfg.default_hooks.logger.interval = 10
    init_default_scope('mmseg')
    torch.manual_seed(1)
    inner = MODELS.build(copy.deepcopy(cfg.model.backbone.backbone))
    pretrained = osp.join(work, 'pretrained_r18.pth')
    torch.save(dict(state_dict=inner.state_dict()), pretrained)
    cfg.model.backbone.backbone.init_cfg = dict(type='Pretrained', checkpoint=pretrained)
    config = osp.join(work, 'upernet_protune_r18_tiny.py')
    cfg.dump(config)
    Runner.from_cfg(cfg).train()
    ckpt = sorted(glob.glob(osp.join(work, 'run', 'iter_*.pth')))[-1]
    pack = osp.join(work, 'upernet_protune_r18_tiny.task.safetensors')
    runner_model = MODELS.build(copy.deepcopy(cfg.model))
    export_prompt_pack(runner_model, ckpt, pack, 'task')
    print(f'config {config}\ncheckpoint {ckpt}\npack {pack}')
    print(f'python tools/test_robustness.py {config} {ckpt} --work-dir {work}/robustness')
    return config, ckpt, pack


if __name__ == '__main__':
    os.chdir(REPO)
    main()
