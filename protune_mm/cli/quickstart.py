"""Quickstart: the whole workflow on synthetic data, on CPU, in minutes.

1. writes small synthetic data sets in the COCO 2017 and ADE20K layouts under
   data/synthetic/ (once);
2. trains the Pro-tuned Mask R-CNN R50 and the Pro-tuned UPerNet R50 through
   tools/train.py (configs/quickstart/, which inherit the real configs);
3. evaluates them with the stock metrics (COCO bbox/segm mAP, mIoU);
4. exports prompt-only packs with tools/export_prompts.py;
5. saves a picture of the predictions on a validation image.

Data and work dirs go under the current directory; the configs are the ones shipped
with the package (``protune_mm::quickstart/...``), so an installed package runs it
from anywhere: ``python -m protune_mm.cli.quickstart``.

Without network the ImageNet weights cannot be downloaded: it says so and trains
on the frozen backbone as initialised (the numbers then only show that the
pipeline runs, not what Pro-tuning achieves).
"""
import argparse
import glob
import json
import os.path as osp
import socket
import subprocess
import sys
import time

from protune_mm.data import make_ade20k, make_coco

from .config import load_config

JOBS = [
    # name, config, pretrained source of its frozen backbone, download host
    ('det', 'protune_mm::quickstart/mask_rcnn_protune_r50_synthetic.py',
     'torchvision://resnet50', 'download.pytorch.org'),
    ('seg', 'protune_mm::quickstart/upernet_protune_r50_synthetic.py',
     'open-mmlab://resnet50_v1c', 'download.openmmlab.com'),
]
T0 = time.time()


def say(msg):
    print(f'[quickstart {time.time() - T0:6.0f}s] {msg}', flush=True)


def online(host: str, timeout: float = 3.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def run(tool: str, *args: str):
    """``python -m protune_mm.cli.<tool> ARGS`` (what tools/<tool>.py runs), in its own
    process: mmengine keeps loggers and visualizers per process."""
    cmd = [sys.executable, '-m', f'protune_mm.cli.{tool}', *args]
    say('$ ' + ' '.join(cmd))
    subprocess.run(cmd, check=True)


def latest_metrics(work_dir: str) -> dict:
    """The last validation metrics (rows without a loss) of mmengine's scalars.json."""
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    metrics = {}
    for line in open(files[-1]) if files else []:
        row = json.loads(line)
        if 'loss' not in row:
            metrics = {k: v for k, v in row.items()
                       if k not in ('data_time', 'time', 'step', 'iter', 'epoch')}
    return metrics


def save_picture(task: str, config: str, checkpoint: str, out_file: str):
    cfg = load_config(config)
    ann_dir = cfg.val_dataloader.dataset.data_root
    if task == 'det':
        from mmdet.apis import inference_detector, init_detector
        from mmdet.registry import VISUALIZERS
        image = sorted(glob.glob(osp.join(ann_dir, 'val2017', '*.jpg')))[0]
        model = init_detector(cfg, checkpoint, device='cpu')
        result = inference_detector(model, image)
        vis = VISUALIZERS.build(model.cfg.visualizer)
    else:
        from mmseg.apis import inference_model, init_model
        from mmseg.registry import VISUALIZERS
        image = sorted(glob.glob(osp.join(ann_dir, 'images', 'validation',
                                          '*.jpg')))[0]
        model = init_model(cfg, checkpoint, device='cpu')
        result = inference_model(model, image)
        vis = VISUALIZERS.build(model.cfg.visualizer)
    import mmcv
    vis.dataset_meta = model.dataset_meta
    vis.add_datasample('prediction', mmcv.imread(image, channel_order='rgb'), result,
                       draw_gt=False, show=False, out_file=out_file,
                       **({'pred_score_thr': 0.3} if task == 'det' else {}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--only', choices=['det', 'seg'])
    parser.add_argument('--iters', type=int, help='training iterations per model')
    parser.add_argument('--work-dir', default='work_dirs/quickstart')
    args = parser.parse_args(argv)

    say('1/5 synthetic data (data/synthetic/)')
    for make, root in ((make_coco, 'data/synthetic/coco'),
                       (make_ade20k, 'data/synthetic/ade')):
        result = make(root)
        say(f"  {root}: {'written' if result['written'] else 'already there'}")

    summary = []
    for task, config, source, host in JOBS:
        if args.only and task != args.only:
            continue
        name = osp.splitext(osp.basename(config))[0]
        work_dir = osp.join(args.work_dir, name)
        options = []
        if online(host):
            say(f'2/5 {task}: frozen backbone from {source}')
        else:
            say(f'2/5 {task}: NO NETWORK: the ImageNet weights {source} cannot be '
                'downloaded. Training goes on with the frozen backbone as randomly '
                'initialised, so the metrics below only show that everything runs. '
                'The checkpoints keep the frozen backbone (it has no other source).')
            options += ['model.backbone.backbone.init_cfg=None',
                        'custom_hooks.1.save_frozen=True']
        if args.iters:
            options += [f'train_cfg.max_iters={args.iters}',
                        f'train_cfg.val_interval={args.iters}',
                        f'default_hooks.checkpoint.interval={args.iters}']
        run('train', config, '--work-dir', work_dir,
            *(['--cfg-options'] + options if options else []))
        checkpoint = open(osp.join(work_dir, 'last_checkpoint')).read().strip()
        metrics = latest_metrics(work_dir)
        say(f'3/5 {task}: validation metrics {metrics}')

        pack = osp.join(work_dir, 'prompts.safetensors')
        task_pack = osp.join(work_dir, 'task.safetensors')
        run('export_prompts', checkpoint, '--out', pack, '--what', 'prompts')
        run('export_prompts', checkpoint, '--out', task_pack, '--what', 'task')
        say(f'4/5 {task}: packs {pack} ({osp.getsize(pack):,} B), {task_pack} '
            f'({osp.getsize(task_pack):,} B); checkpoint {checkpoint} '
            f'({osp.getsize(checkpoint):,} B)')

        picture = osp.join(work_dir, 'prediction.jpg')
        save_picture(task, config, checkpoint, picture)
        say(f'5/5 {task}: predictions on a validation image: {picture}')
        summary.append((task, work_dir, checkpoint, pack, task_pack, picture, metrics))

    say('done. Where everything went:')
    for task, work_dir, checkpoint, pack, task_pack, picture, metrics in summary:
        print(f'  {task}: logs and checkpoints {work_dir}/\n'
              f'       checkpoint  {checkpoint}\n'
              f'       prompt pack {pack}\n'
              f'       task pack   {task_pack}\n'
              f'       picture     {picture}\n'
              f'       metrics     {metrics}')


if __name__ == '__main__':
    main()
