"""The robustness examples of docs/robustness.md: a Pro-tuned UPerNet or
Mask R-CNN, the real config shrunk as the tests shrink it (frozen ResNet-18 at a
fixed random init saved as its 'pretrained' file, 128 px,
protune_mm.cli.scaled_config.shrink), trained briefly on synthetic ADE20K / COCO
layout data; writes its config, small checkpoint and task pack, then prints the
tools/test_robustness.py command.

    python benchmarks/robustness_example.py [--model upernet|mask_rcnn] \
        [--work-dir work_dirs/robustness_example] [--iters 20] [--lr 1e-3] \
        [--num-train 32] [--num-val 8]
"""
import argparse
import copy
import os
import os.path as osp

import torch
from mmengine.config import Config

from protune_mm.cli.scaled_config import shrink

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


CONFIGS = dict(upernet='seg/upernet_protune_r50_ade20k', mask_rcnn='det/mask_rcnn_protune_r50')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', choices=sorted(CONFIGS), default='upernet')
    parser.add_argument('--work-dir', default='work_dirs/robustness_example')
    parser.add_argument('--iters', type=int, default=20)
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--num-train', type=int, default=32)
    parser.add_argument('--num-val', type=int, default=8)
    args = parser.parse_args(argv)
    import importlib

    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    from protune_mm import export_prompt_pack
    from protune_mm.data import make_ade20k, make_coco
    det = args.model == 'mask_rcnn'
    scope = 'mmdet' if det else 'mmseg'
    MODELS = importlib.import_module(f'{scope}.registry').MODELS
    work = osp.abspath(args.work_dir)
    data = osp.join(work, 'data', 'coco' if det else 'ade')
    if not osp.exists(data):
        (make_coco if det else make_ade20k)(data, num_train=args.num_train,
                                            num_val=args.num_val, image_size=128, seed=0)
    roots = dict(coco=data) if det else dict(ade=osp.join(data, 'ADEChallengeData2016'))
    cfg = shrink(Config.fromfile(osp.join(REPO, 'configs', CONFIGS[args.model] + '.py')),
                 roots, osp.join(work, 'run'), iters=args.iters)
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False,
                                begin=0, end=5)]
    cfg.optim_wrapper.optimizer.lr = args.lr
    if det:  # shrink trains detectors by epoch: about --iters iterations of batch 2
        epochs = max(1, round(args.iters * cfg.train_dataloader.batch_size / args.num_train))
        cfg.train_cfg.update(max_epochs=epochs, val_interval=epochs)
        cfg.default_hooks.checkpoint.interval = epochs
    cfg.default_hooks.logger.interval = 10
    init_default_scope(scope)
    torch.manual_seed(1)
    inner = MODELS.build(copy.deepcopy(cfg.model.backbone.backbone))
    pretrained = osp.join(work, 'pretrained_r18.pth')
    torch.save(dict(state_dict=inner.state_dict()), pretrained)
    cfg.model.backbone.backbone.init_cfg = dict(type='Pretrained', checkpoint=pretrained)
    name = f'{args.model}_protune_r18_tiny'
    config = osp.join(work, name + '.py')
    cfg.dump(config)
    Runner.from_cfg(cfg).train()
    with open(osp.join(work, 'run', 'last_checkpoint')) as f:
        ckpt = f.read().strip()
    pack = osp.join(work, name + '.task.safetensors')
    runner_model = MODELS.build(copy.deepcopy(cfg.model))
    export_prompt_pack(runner_model, ckpt, pack, 'task')
    print(f'config {config}\ncheckpoint {ckpt}\npack {pack}')
    print(f'python tools/test_robustness.py {config} {ckpt} --work-dir {work}/robustness')
    return config, ckpt, pack


if __name__ == '__main__':
    os.chdir(REPO)
    main()
