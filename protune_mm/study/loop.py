"""Training and evaluation: a plain loop over ``model.train_step`` and mmseg's
``IoUMetric`` through ``model.val_step``."""
import logging
import math
import statistics
import time
from collections import OrderedDict
from datetime import timedelta
from typing import Optional

import numpy as np
import torch

from .tasks import make_batch

#: task A pre-training always uses this seed: one pre-trained backbone per study.
PRETRAIN_SEED = 0
#: linear warm-up over this share of the iterations, then cosine to 0.
WARMUP_FRACTION = 0.05

#: val images per val_step (all of one size, so mmseg stacks them unpadded).
EVAL_BATCH = 16


def log(msg: str):
    from mmengine.logging import print_log
    print_log(msg, logger='current')


def lr_at(it: int, iters: int, base: float) -> float:
    """Linear warm-up over the first 5% of iterations, then cosine to 0."""
    # Not mmengine's/torch's LinearLR+CosineAnnealingLR: recursive, not bit-identical to this.
    warmup = max(1, int(WARMUP_FRACTION * iters))
    if it < warmup:
        return base * (it + 1) / warmup
    return base * 0.5 * (1 + math.cos(math.pi * (it - warmup) / max(1, iters - warmup)))


def data_order(num: int, iters: int, batch: int, seed: int) -> list:
    """Batches of indices for ``iters`` iterations: shuffled epochs, a function of
    the seed only, so every method sees the same images in the same order."""
    rng = np.random.default_rng(10_000 + seed)
    order = []
    while len(order) < iters * batch:
        order.extend(rng.permutation(num).tolist())
    return [order[i * batch:(i + 1) * batch] for i in range(iters)]


def _scalar(value) -> float:
    return float(value.detach()) if torch.is_tensor(value) else float(value)


def train(model, split, args, iters: int, base_lr: float, seed: int, tag: str,
          side_lr: Optional[float] = None) -> float:
    """Plain loop over ``model.train_step`` with AdamW on the trainable params;
    ``side_lr``: the backbone-side ones (prompts, or a fine-tuned backbone) at that
    peak lr instead."""
    from mmengine.optim import OptimWrapper
    side = {id(p) for p in model.backbone.parameters()} if side_lr else set()
    groups = [dict(params=[p for p in model.parameters()
                           if p.requires_grad and id(p) not in side], base=base_lr)]
    if side_lr:
        groups.append(dict(params=[p for p in model.backbone.parameters()
                                   if p.requires_grad], base=side_lr))
    optim = OptimWrapper(torch.optim.AdamW([g for g in groups if g['params']],
                                           lr=base_lr, weight_decay=0.0))
    batches = data_order(len(split[0]), iters, args.batch, seed)
    torch.manual_seed(seed)  # dropout of VPT prompts
    model.train()
    start = time.perf_counter()
    window = []
    for it, indices in enumerate(batches):
        lr = lr_at(it, iters, base_lr)
        for group in optim.param_groups:
            # With several groups mmengine's wrapper appends one of its own, for
            # logging only: it has no 'base'.
            group['lr'] = lr_at(it, iters, group.get('base', base_lr))
        log_vars = model.train_step(make_batch(split, indices), optim)
        loss = _scalar(log_vars['loss'])
        window.append(loss)
        if (it + 1) % args.log_interval == 0 or it + 1 == iters:
            elapsed = time.perf_counter() - start
            eta = elapsed / (it + 1) * (iters - it - 1)
            acc = _scalar(log_vars.get('decode.acc_seg', float('nan')))
            log(f'{tag} Iter(train) [{it + 1:>{len(str(iters))}}/{iters}]  '
                f'lr: {lr:.3e}  eta: {timedelta(seconds=round(eta))}  '
                f'time: {elapsed / (it + 1):.3f}  loss: {statistics.mean(window):.4f}  '
                f'acc_seg: {acc:.2f}  elapsed: {elapsed:.1f}s')
            window = []
            if not math.isfinite(loss):
                raise RuntimeError(f'{tag}: loss is {loss} at iteration {it + 1}')
    return time.perf_counter() - start


def evaluate(model, data, split: str = 'val', num: Optional[int] = None) -> dict:
    """mIoU / aAcc (%) on a split (its first ``num`` images) with mmseg's IoUMetric
    via model.val_step."""
    from mmengine.evaluator import Evaluator
    from mmengine.logging import MMLogger
    from mmseg.evaluation import IoUMetric
    metric = IoUMetric(iou_metrics=['mIoU'])
    evaluator = Evaluator([metric])
    evaluator.dataset_meta = dict(classes=data['classes'])
    model.eval()
    split = data[split]
    num = len(split[0]) if num is None else min(num, len(split[0]))
    with torch.no_grad():
        for start in range(0, num, EVAL_BATCH):
            batch = make_batch(split, range(start, min(num, start + EVAL_BATCH)))
            evaluator.process(data_samples=model.val_step(batch), data_batch=batch)
    areas = [sum(r[k] for r in metric.results) for k in range(4)]
    per_class = IoUMetric.total_area_to_metrics(*areas, metrics=['mIoU'])['IoU']
    # IoUMetric logs a per-class table at INFO; ours goes into the JSON instead.
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        metrics = evaluator.evaluate(num)
    finally:
        logger.setLevel(level)
    pick = {k.split('/')[-1]: float(v) for k, v in metrics.items()}
    return dict(mIoU=pick['mIoU'], aAcc=pick['aAcc'],
                per_class_IoU={c: (None if math.isnan(v) else round(100 * float(v), 2))
                               for c, v in zip(data['classes'], per_class)})


#: corrupted task B val sets, shared by every model of a run (same images, seeds).
_CORRUPTED_VAL = {}


def corrupted_val(data: dict, corruption: str, severity: int, seed: int):
    """Task B's val images through ``protune_mm.Corrupt``, the pipeline step of
    tools/test_robustness.py; each image is seeded by its own name."""
    from protune_mm.robustness import Corrupt
    images, labels = data['val']
    key = (id(images), corruption, severity, seed)
    if key not in _CORRUPTED_VAL:
        step = Corrupt(corruption, severity, seed=seed, channel_order='rgb')
        _CORRUPTED_VAL[key] = np.stack([
            step(dict(img=img, img_path=f'task_b_val_{i:05d}.png'))['img']
            for i, img in enumerate(images)])
    return _CORRUPTED_VAL[key][:], labels


def evaluate_corrupted(model, data: dict, clean: dict, args, tag: str) -> dict:
    """mIoU on corrupted task B val images per corruption and severity, with
    mPC / rPC as tools/test_robustness.py computes them."""
    from protune_mm.robustness import summarise
    start = time.perf_counter()
    per = OrderedDict()
    for corruption in args.corruptions:
        per[corruption] = OrderedDict()
        for severity in args.severities:
            split = corrupted_val(data, corruption, severity, args.corruption_seed)
            r = evaluate(model, dict(data, val=split))
            per[corruption][str(severity)] = dict(mIoU=r['mIoU'], aAcc=r['aAcc'])
        log(f'{tag}: {corruption}: mIoU ' + ' '.join(
            f"{v['mIoU']:.1f}" for v in per[corruption].values()) +
            f' (severities {args.severities}; {time.perf_counter() - start:.0f}s)')
    summary = summarise(dict(mIoU=clean['mIoU']), per, ['mIoU'])['mIoU']
    log(f"{tag}: corrupted task B val: clean mIoU {summary['clean']:.2f}, mPC "
        f"{summary['mPC']:.2f}, rPC {summary['rPC']:.3f} "
        f'({time.perf_counter() - start:.0f}s)')
    return dict(mIoU_clean=summary['clean'], mPC=summary['mPC'], rPC=summary['rPC'],
                per_corruption=summary['per_corruption'],
                per_family=summary['per_family'], evaluations=per)
