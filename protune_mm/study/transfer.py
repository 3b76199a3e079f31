"""Do prompts learn? A small CPU transfer study.

1. Pre-train a small backbone (plus a light head) fully on synthetic segmentation
   task A, in memory, no downloads; check its mIoU on task A's val set.
2. Write the pre-trained backbone's state dict to ``WORK_DIR/<backbone>/
   pretrained_task_a.pth`` and adapt it to a different synthetic task B with a
   fresh head, every method under the same schedule (iterations, batch, data order,
   optimizer, lr, seed, head init): head-only (``protune_mm.Frozen``), Pro-tuning
   (``protune_mm.ProTune``), VPT (``protune_mm.VPT``), full fine-tuning (the stock
   backbone, all trainable) and, on request, training from scratch. Every model
   loads the checkpoint through the inner backbone's
   ``init_cfg=dict(type='Pretrained', checkpoint=PATH)``, i.e. the normal path.
3. Evaluate on task B's held-out val set with mmseg's ``IoUMetric`` through
   ``model.val_step``; report mIoU, aAcc, trainable parameters and the mIoU gain
   over head-only, per seed and as mean.

Task A, "solid shapes": discs and squares (rotated) in saturated solid colours on a
plain background; classes background / disc / square.
Task B, "textures": triangles, stars and ellipses on a noisy colour-gradient
background, each filled with two random muted colours in a texture; the class is
the texture (stripes / checks / dots), not the shape or the colour, so the
object boundaries A taught are useful, but the texture classes must be learned.

Checks that fail loudly (RuntimeError): each model's backbone equals the checkpoint
bit for bit after loading, and every frozen backbone (parameters and BN buffers)
still does after training; trainable parameter counts are what each method
implies (head-only: no backbone-side trainable parameter; prompts: exactly the
prompts; the same head everywhere), and agree with ``protune_mm.parameter_report``.

Usage::

    python tools/transfer_study.py [--backbones resnet vit] \\
        [--methods frozen protune vpt full scratch] [--iters-pretrain N] [--iters N] \\
        [--batch N] [--size PX] [--seeds 0 1 2] [--lr LR] [--lr-pretrain LR] \\
        [--threads N] \\
        [--num-train N] [--num-val N] [--work-dir work_dirs/transfer_study] \\
        [--out benchmarks/transfer_study.json]

The adapted models are saved as ``WORK_DIR/<backbone>/<method>_seed<S>.pth`` (small
models: a few MB each), so the frozen-backbone check can be repeated from files.

This module runs the study (pre-training, adaptation, the loop over backbones, seeds
and methods); its parts: ``variants`` (methods and their options), ``models``
(configs), ``tasks`` (data), ``loop`` (training and evaluation), ``checks``,
``report`` (summaries, tables, the JSON); the command line is
``protune_mm.cli.transfer_study``.
"""
import copy
import os
import os.path as osp
import time
from collections import OrderedDict
from datetime import datetime, timedelta

import torch

from protune_mm import PromptMethod
from protune_mm.fileio import atomic_write, write_json
from .checks import check_equal, count_params, inner_backbone
from .loop import PRETRAIN_SEED, evaluate, evaluate_corrupted, log, train
from .models import backbone_config, build_model, initial_head, method_config
from .report import reproduce_command, study_report, study_table, summarise
from .tasks import TASKS, task_data
from .variants import FROZEN_METHODS, Variant, method_lr


def load_checkpoint_state(path: str) -> dict:
    return torch.load(path, map_location='cpu', weights_only=True)['state_dict']


def atomic_save(obj, path: str):
    with atomic_write(path) as tmp:
        torch.save(obj, tmp)


def pretrain_settings(backbone: str, args) -> dict:
    """What determines the task A backbone: a checkpoint written with the same
    settings is reused."""
    return dict(task='A', backbone=backbone, iters=args.iters_pretrain,
                seed=PRETRAIN_SEED, lr=args.lr_pretrain, batch=args.batch,
                size=args.size, num_train=args.num_train, num_val=args.num_val,
                backbone_cfg=backbone_config(backbone, args.size))


def pretrain(backbone: str, data_a: dict, args, work_dir: str) -> dict:
    tag = f'{backbone}/pretrain-A'
    path = osp.join(work_dir, 'pretrained_task_a.pth')
    settings = pretrain_settings(backbone, args)
    if osp.exists(path):
        saved = torch.load(path, map_location='cpu', weights_only=True)
        if saved['meta'].get('settings') == settings:
            log(f'{tag}: reusing {path} (same task A settings; task A val mIoU '
                f"{saved['meta']['result']['mIoU']:.2f})")
            return dict(checkpoint=path, task='A', seed=PRETRAIN_SEED,
                        iters=args.iters_pretrain, reused=True, **saved['meta']['result'])
    log(f'{tag}: training backbone + head on task A ({TASKS["A"]["name"]}), '
        f'{args.iters_pretrain} iterations')
    torch.manual_seed(PRETRAIN_SEED)
    model = build_model(backbone_config(backbone, args.size), backbone,
                        len(data_a['classes']))
    seconds = train(model, data_a['train'], args, args.iters_pretrain, args.lr_pretrain,
                    PRETRAIN_SEED, tag)
    result = evaluate(model, data_a)
    state = OrderedDict((k, v.detach().clone()) for k, v in model.backbone.state_dict().items())
    atomic_save(dict(meta=dict(task='A', backbone=backbone, iters=args.iters_pretrain,
                               seed=PRETRAIN_SEED, settings=settings,
                               result=dict(result, time_s=round(seconds, 1))),
                     state_dict=state), path)
    log(f'{tag}: task A val mIoU {result["mIoU"]:.2f}, aAcc {result["aAcc"]:.2f} '
        f'({seconds:.0f}s); backbone written to {path}')
    return dict(checkpoint=path, task='A', seed=PRETRAIN_SEED, iters=args.iters_pretrain,
                time_s=round(seconds, 1), **result)


def adapt(backbone: str, method: str, seed: int, checkpoint: str, reference: dict,
          head_init: dict, data_b: dict, args, work_dir: str) -> dict:
    variant = Variant(method)
    label, name = variant.label, variant.name
    tag = f'{backbone}/{method} seed {seed}'
    inner = backbone_config(backbone, args.size)
    if name != 'scratch':
        inner['init_cfg'] = dict(type='Pretrained', checkpoint=checkpoint)
    cfg = method_config(method, backbone, inner, args.size)
    lp_iters = variant.options.get('lp_iters', 0)
    lp_seconds = 0.0
    if lp_iters:
        # LP-FT (Kumar et al., ICLR 2022): the head first learns on the frozen
        # backbone (exactly head-only training), then everything fine-tunes.
        probe = build_model(method_config('frozen', backbone, copy.deepcopy(inner),
                                          args.size),
                            backbone, len(data_b['classes']), head_init)
        lp_seconds = train(probe, data_b['train'], args, lp_iters, args.lr, seed,
                           f'{tag} linear probe')
        head_init = {k: v.detach().clone()
                     for k, v in probe.decode_head.state_dict().items()}
    torch.manual_seed(seed)
    model = build_model(cfg, backbone, len(data_b['classes']), head_init)
    if name != 'scratch':
        check_equal(inner_backbone(model, name), reference,
                    f'{tag}: backbone after loading {checkpoint}')
    counts = count_params(model, name)
    # What the wrapper's arguments resolved to (ProTune's place follows the
    # backbone family), so a JSON says what ran, whatever the defaults become.
    method_cfg = (model.backbone.method_config()
                  if isinstance(model.backbone, PromptMethod) else None)
    log(f'{tag}: {label}, trainable {counts["trainable"]:,} (backbone side '
        f'{counts["backbone_side_trainable"]:,}, head {counts["head_trainable"]:,})')
    lr = method_lr(args, method)
    # The backbone side's own peak lr: the prompts', or a fine-tuned backbone's.
    side_lr = variant.options.get('prompt_lr', variant.options.get('backbone_lr'))
    seconds = lp_seconds + train(model, data_b['train'], args, args.iters, lr, seed,
                                 tag, side_lr)
    frozen_check = None
    if name in FROZEN_METHODS:
        n = check_equal(inner_backbone(model, name), reference,
                        f'{tag}: frozen backbone after training')
        frozen_check = f'bit-identical to the checkpoint ({n} tensors)'
    result = evaluate(model, data_b)
    if args.eval_train:
        # The images it trained on (at most --num-val of them): with the val
        # figure, the gap tells overfitting from underfitting.
        result['train'] = evaluate(model, data_b, 'train', args.num_val)
    if args.robustness:
        result['robustness'] = evaluate_corrupted(model, data_b, result, args, tag)
    atomic_save(dict(meta=dict(method=str(method), backbone=backbone, seed=seed,
                               pretrained=checkpoint),
                     state_dict=model.state_dict()),
                osp.join(work_dir, f'{variant.slug}_seed{seed}.pth'))
    train_miou = (f', train mIoU {result["train"]["mIoU"]:.2f}' if args.eval_train
                  else '')
    log(f'{tag}: task B val mIoU {result["mIoU"]:.2f}, aAcc {result["aAcc"]:.2f}'
        f'{train_miou} ({seconds:.0f}s)'
        + (f'; frozen backbone {frozen_check}' if frozen_check else ''))
    return dict(result, counts=counts, frozen_check=frozen_check, time_s=round(seconds, 1),
                backbone_cfg=cfg, method_config=method_cfg, lr=lr,
                backbone_side_lr=side_lr)


def run(args) -> dict:
    from mmengine.logging import MMLogger
    from mmseg.utils import register_all_modules

    start = time.perf_counter()
    torch.set_num_threads(args.threads)
    os.makedirs(args.work_dir, exist_ok=True)
    stamp = datetime.now().strftime('%Y%m%d_%H%M%S_%f')
    MMLogger.get_instance(f'transfer_study_{stamp}', log_level='INFO',
                          log_file=osp.join(args.work_dir, f'{stamp}.log'))
    register_all_modules(init_default_scope=True)
    command = reproduce_command(args)
    log(f'transfer study: {command}')
    data = dict(A=task_data('A', args), B=task_data('B', args))

    results = OrderedDict()
    for backbone in args.backbones:
        work_dir = osp.join(args.work_dir, backbone)
        os.makedirs(work_dir, exist_ok=True)
        pre = pretrain(backbone, data['A'], args, work_dir)
        reference = load_checkpoint_state(pre['checkpoint'])
        runs = OrderedDict((m, {}) for m in args.methods)
        for seed in args.seeds:
            head_init = initial_head(backbone, len(data['B']['classes']), seed)
            for method in args.methods:
                runs[method][seed] = adapt(backbone, method, seed, pre['checkpoint'],
                                           reference, head_init, data['B'], args,
                                           work_dir)
        results[backbone] = OrderedDict(backbone_cfg=backbone_config(backbone, args.size),
                                        pretrain=pre, methods=summarise(runs, args.seeds))

    wall = time.perf_counter() - start
    table = study_table(results, args)
    report = study_report(args, command, results, table, wall)
    write_json(report, args.out)
    print(table)
    print(f'\nwall time {timedelta(seconds=round(wall))}; JSON written to {args.out}')
    print(f'reproduce: {command}')
    return report
