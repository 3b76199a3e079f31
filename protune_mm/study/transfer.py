"""Do prompts learn? A small CPU transfer study (issue 7, item 3).

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
"""
import argparse
import copy
import logging
import math
import os
import os.path as osp
import platform
import shlex
import statistics
import time
from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Optional

import numpy as np
import torch
from PIL import Image, ImageDraw

from protune_mm.fileio import atomic_write, write_json
from protune_mm.methods.base import PromptMethod

# ----------------------------------------------------------------------------------
# Study settings

#: method name -> (label in reports, wrapper type; None = the stock backbone).
METHODS = OrderedDict([
    ('frozen', ('head-only', 'protune_mm.Frozen')),
    ('protune', ('Pro-tuning', 'protune_mm.ProTune')),
    ('vpt', ('VPT', 'protune_mm.VPT')),
    ('full', ('full fine-tuning', None)),
    ('scratch', ('from scratch', None)),  # reference: task B without pre-training
])
DEFAULT_METHODS = ('frozen', 'protune', 'vpt', 'full')
BACKBONES = ('resnet', 'vit')
FROZEN_METHODS = ('frozen', 'protune', 'vpt')
#: task A pre-training always uses this seed: one pre-trained backbone per study.
PRETRAIN_SEED = 0
#: ImageNet mean/std on 0-255 RGB: mmseg's default, and what VPT's pad prompts
#: assume (protune_mm.methods.vpt_pad.PAD_MEAN/PAD_STD).
MEAN, STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)
HEAD_CHANNELS = 32
WARMUP_FRACTION = 0.05
#: val images per val_step (all of one size, so mmseg stacks them unpadded).
EVAL_BATCH = 16


#: study options of a method variant (``NAME:key=value,...``); every other key is
#: an argument of the method's wrapper (``protune:hidden_ratio=0.25``).
STUDY_OPTIONS = {
    'lr': 'task B learning rate of this variant (instead of --lr/--method-lr)',
    'prompt_lr': 'learning rate of the backbone-side parameters (prompts); the '
                 'head keeps the method lr',
    'backbone_lr': 'full fine-tuning: peak learning rate of the backbone; the head '
                   'keeps the method lr (a discriminative lr)',
    'per_block': 'Pro-tuning on ResNet: a block before every residual block '
                 '(stage_modules) instead of one per stage',
    'lp_iters': 'full fine-tuning after a linear probe (LP-FT): this many '
                'head-only iterations at --lr first, then --iters of full '
                'fine-tuning from the probed head',
}


class Variant(str):
    """A ``--methods`` entry: a method name, optionally with options,
    ``protune:hidden_ratio=0.25,prompt_lr=0.03``. It is its own key in results."""

    @property
    def name(self) -> str:
        return self.partition(':')[0]

    @property
    def options(self) -> 'OrderedDict[str, object]':
        return parse_options(self)

    @property
    def label(self) -> str:
        extra = ', '.join(f'{k}={v}' for k, v in self.options.items())
        return METHODS[self.name][0] + (f' ({extra})' if extra else '')

    @property
    def slug(self) -> str:
        """For file names: ``protune-hidden_ratio-0.25``."""
        return ''.join(c if c.isalnum() or c in '._' else '-' for c in self)


def parse_options(spec: str) -> 'OrderedDict[str, object]':
    """``'protune:hidden_ratio=0.25,place=output'`` -> ordered options; values are
    Python literals (numbers, True/False, quoted or bare strings)."""
    import ast
    name, _, rest = spec.partition(':')
    options = OrderedDict()
    if not rest:
        return options
    for item in rest.split(','):
        key, sep, text = item.partition('=')
        if not sep or not key.isidentifier():
            raise ValueError(f'--methods {spec!r}: expected NAME:key=value[,key=value], '
                             f'got {item!r}')
        if key in options:
            raise ValueError(f'--methods {spec!r}: {key} given twice')
        try:
            options[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            options[key] = text
    return options


def check_variant(spec: str) -> Variant:
    """A validated :class:`Variant`; errors name the entry and the allowed values."""
    variant = Variant(spec)
    if variant.name not in METHODS:
        raise ValueError(f'--methods: unknown value(s) [{variant.name!r}]; allowed: '
                         f'{list(METHODS)} (optionally NAME:key=value,...)')
    options = variant.options
    wrapper = METHODS[variant.name][1]
    for key in ('lr', 'prompt_lr', 'backbone_lr'):
        if key in options and not (isinstance(options[key], (int, float))
                                   and not isinstance(options[key], bool)
                                   and math.isfinite(options[key]) and options[key] > 0):
            raise ValueError(f'--methods {spec!r}: {key} must be a positive number, '
                             f'got {options[key]!r}')
    if 'per_block' in options and (variant.name != 'protune'
                                   or options['per_block'] not in (True, False)):
        raise ValueError(f'--methods {spec!r}: per_block=True/False is a protune option')
    if 'lp_iters' in options and (variant.name != 'full' or isinstance(
            options['lp_iters'], bool) or not isinstance(options['lp_iters'], int)
            or options['lp_iters'] < 1):
        raise ValueError(f'--methods {spec!r}: lp_iters=N (N >= 1) is a full option')
    if 'prompt_lr' in options and variant.name not in ('protune', 'vpt'):
        raise ValueError(f'--methods {spec!r}: prompt_lr needs prompts (protune, vpt)')
    if 'backbone_lr' in options and variant.name not in ('full', 'scratch'):
        raise ValueError(f'--methods {spec!r}: backbone_lr needs a trained backbone '
                         '(full, scratch)')
    wrapper_keys = [k for k in options if k not in STUDY_OPTIONS]
    if wrapper_keys and wrapper is None:
        raise ValueError(f'--methods {spec!r}: {variant.name} has no wrapper; its '
                         f"options are ['lr', 'backbone_lr', 'lp_iters'], got "
                         f'{wrapper_keys}')
    return variant


def backbone_config(name: str, size: int) -> dict:
    """The stock (unwrapped) backbone of the study, without weights."""
    if name == 'resnet':
        # ResNet-18-V1c at a quarter width (16-32-64-128 channels): small enough
        # for CPU, still a real mmseg ResNet the wrappers know.
        return dict(type='ResNetV1c', depth=18, stem_channels=16, base_channels=16,
                    out_indices=(0, 1, 2, 3), norm_cfg=dict(type='BN', requires_grad=True),
                    norm_eval=False, style='pytorch', contract_dilation=True)
    if name == 'vit':
        # A 4-block, 64-wide ViT with 8-px patches (an 8x8 token grid at 64 px),
        # one block per output. pyramid=False keeps the 4 outputs on the token
        # grid: TimmViT's pyramid would only interpolate them (no new information)
        # and make the light head run at stride 2, 16x the cost.
        return dict(type='protune_mm.TimmViT', model_name='vit_tiny_patch16_224',
                    pyramid=False, out_indices=(0, 1, 2, 3),
                    model_kwargs=dict(img_size=size, patch_size=8, embed_dim=64,
                                      depth=4, num_heads=2))
    raise ValueError(f'unknown backbone {name!r}')


def backbone_channels(name: str):
    return (16, 32, 64, 128) if name == 'resnet' else (64, ) * 4


def head_config(in_channels, num_classes: int) -> dict:
    """The light decode head, identical for every method: the 4 backbone levels
    resized to the finest one and concatenated, then one 1x1 conv (+BN+ReLU) and
    the 1x1 classifier, i.e. a per-pixel 2-layer MLP. It sees no spatial context
    of its own, so what the backbone computes is what head-only can use."""
    return dict(type='FCNHead', in_channels=list(in_channels), in_index=[0, 1, 2, 3],
                input_transform='resize_concat', channels=HEAD_CHANNELS, num_convs=1,
                kernel_size=1, concat_input=False, dropout_ratio=0.0,
                num_classes=num_classes, norm_cfg=dict(type='BN', requires_grad=True),
                align_corners=False,
                loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                                 loss_weight=1.0))


def method_config(method: str, backbone: str, inner: dict, size: int) -> dict:
    """The backbone config of ``method`` (a name or :class:`Variant`) around
    ``inner`` (which holds init_cfg)."""
    variant = Variant(method)
    method, options = variant.name, variant.options
    wrapper = METHODS[method][1]
    if wrapper is None:
        return inner
    cfg = dict(type=wrapper, backbone=inner)
    if backbone == 'resnet':
        # Lean frozen ops: same outputs, less time/memory (tested in the package).
        cfg['memory_efficient'] = True
    if method == 'vpt':
        if backbone == 'resnet':
            # Pad prompts: a border of p px around the image (VPT's search:
            # p in 1-11 at 224 px; here 10 px at 320 px, scaled), learned at the
            # image size itself.
            cfg.update(deep=False, num_tokens=vpt_border(size), pad_base=size)
        else:
            cfg.update(deep=True, num_tokens=10)  # VPT-deep
    if options.get('per_block'):
        if backbone != 'resnet':
            raise ValueError(f'--methods {variant!r}: per_block is for the resnet '
                             'backbone (the ViT has one block per stage already)')
        # ResNet-18: 2 BasicBlocks per stage. Named stages have no lean frozen ops
        # (the ResNet adapter's), so the frozen backbone runs its stock ops.
        cfg['stage_modules'] = [f'layer{i}.{j}' for i in range(1, 5) for j in range(2)]
        cfg.pop('memory_efficient', None)
    cfg.update((k, v) for k, v in options.items() if k not in STUDY_OPTIONS)
    return cfg


def vpt_border(size: int) -> int:
    return max(1, round(size * 10 / 320))


def segmentor_config(backbone: dict, in_channels, num_classes: int) -> dict:
    return dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=list(MEAN),
                               std=list(STD), size_divisor=32, pad_val=0,
                               seg_pad_val=255, bgr_to_rgb=False),
        backbone=backbone,
        decode_head=head_config(in_channels, num_classes),
        train_cfg=dict(), test_cfg=dict(mode='whole'))


# ----------------------------------------------------------------------------------
# Synthetic tasks (numpy + PIL, deterministic per seed)

#: objects drawn per image, in both tasks.
MIN_OBJECTS, MAX_OBJECTS = 2, 5
TASKS = OrderedDict([
    ('A', dict(name='solid shapes', classes=('background', 'disc', 'square'),
               description=f'{MIN_OBJECTS}-{MAX_OBJECTS} discs / rotated squares in '
                           'saturated solid colours on a plain background of one '
                           'random colour; class = shape')),
    ('B', dict(name='textures', classes=('background', 'stripes', 'checks', 'dots'),
               description=f'{MIN_OBJECTS}-{MAX_OBJECTS} triangles / 5-point stars / '
                           'ellipses on a noisy two-colour gradient, filled with a texture in two random '
                           'muted colours, Gaussian noise (sigma 10) on every pixel; '
                           'class = texture (stripes, checks, dots), independent of '
                           'shape and colour')),
])


def _polygon_mask(size, points) -> np.ndarray:
    img = Image.new('L', (size, size), 0)
    ImageDraw.Draw(img).polygon([(float(x), float(y)) for x, y in points], fill=1)
    return np.asarray(img, dtype=bool)


def _polygon_points(cx, cy, r, n, angle, inner_ratio=None):
    """Corners of a regular n-gon around (cx, cy), or of an n-point star whose
    inner corners lie at ``inner_ratio * r``."""
    if inner_ratio is None:
        return [(cx + r * math.cos(angle + 2 * math.pi * k / n),
                 cy + r * math.sin(angle + 2 * math.pi * k / n)) for k in range(n)]
    points = []
    for k in range(2 * n):
        radius = r if k % 2 == 0 else r * inner_ratio
        a = angle + math.pi * k / n
        points.append((cx + radius * math.cos(a), cy + radius * math.sin(a)))
    return points


def _draw_task_a(rng, size):
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    background = rng.integers(0, 256, 3)
    image = np.empty((size, size, 3), np.float32)
    image[:] = background
    label = np.zeros((size, size), np.uint8)
    for _ in range(rng.integers(MIN_OBJECTS, MAX_OBJECTS + 1)):
        cls = int(rng.integers(1, 3))
        r = rng.uniform(0.1, 0.22) * size
        cx, cy = rng.uniform(0.1 * size, 0.9 * size, 2)
        if cls == 1:
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        else:
            mask = _polygon_mask(size, _polygon_points(cx, cy, r * 1.2, 4,
                                                       rng.uniform(0, math.pi)))
        # Saturated colour: one channel high, one low, far from the background.
        while True:
            colour = rng.permutation([rng.uniform(200, 255), rng.uniform(0, 60),
                                      rng.uniform(0, 255)])
            if np.abs(colour - background).sum() > 120:
                break
        image[mask] = colour
        label[mask] = cls
    return image, label


def _texture(cls, rng, size, xx, yy):
    """Boolean texture of class ``cls`` (1 stripes, 2 checks, 3 dots), random
    orientation and scale, over the whole image."""
    s = size / 64  # the scales below are for 64 px images
    angle = rng.uniform(0, math.pi)
    u = xx * math.cos(angle) + yy * math.sin(angle) + rng.uniform(0, 10)
    v = -xx * math.sin(angle) + yy * math.cos(angle) + rng.uniform(0, 10)
    if cls == 1:
        period = max(4.0, rng.uniform(6, 10) * s)
        return (u / period) % 1 < 0.5
    if cls == 2:
        cell = max(2.0, rng.uniform(3, 5) * s)
        return (np.floor(u / cell) + np.floor(v / cell)) % 2 == 0
    spacing = max(4.0, rng.uniform(6, 9) * s)
    du, dv = u % spacing - spacing / 2, v % spacing - spacing / 2
    return du * du + dv * dv < (0.32 * spacing) ** 2


def _draw_task_b(rng, size):
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    # Background: a gradient between two pale colours at a random angle.
    c0, c1 = rng.uniform(90, 230, (2, 3))
    a = rng.uniform(0, 2 * math.pi)
    t = (xx * math.cos(a) + yy * math.sin(a)) / size
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    image = c0 + (c1 - c0) * t[..., None]
    label = np.zeros((size, size), np.uint8)
    for _ in range(rng.integers(MIN_OBJECTS, MAX_OBJECTS + 1)):
        cls = int(rng.integers(1, 4))
        shape = rng.integers(0, 3)
        r = rng.uniform(0.15, 0.3) * size
        cx, cy = rng.uniform(0.1 * size, 0.9 * size, 2)
        if shape == 0:  # triangle
            mask = _polygon_mask(size, _polygon_points(cx, cy, r * 1.2, 3,
                                                       rng.uniform(0, 2 * math.pi)))
        elif shape == 1:  # 5-point star
            mask = _polygon_mask(size, _polygon_points(cx, cy, r * 1.3, 5,
                                                       rng.uniform(0, 2 * math.pi), 0.45))
        else:  # ellipse, rotated
            b = rng.uniform(0, math.pi)
            u = (xx - cx) * math.cos(b) + (yy - cy) * math.sin(b)
            v = -(xx - cx) * math.sin(b) + (yy - cy) * math.cos(b)
            mask = (u / r) ** 2 + (v / (r * rng.uniform(0.5, 0.9))) ** 2 <= 1
        # Two muted colours with visible contrast between them.
        while True:
            fg, bg = rng.uniform(30, 200, (2, 3))
            if np.abs(fg - bg).sum() > 150:
                break
        pattern = _texture(cls, rng, size, xx, yy)
        image[mask] = np.where(pattern[mask, None], fg, bg)
        label[mask] = cls
    image = image + rng.normal(0, 10, image.shape)
    return image, label


def make_task(task: str, num: int, size: int, seed: int):
    """``num`` images (N, H, W, 3) uint8 RGB and label maps (N, H, W) uint8."""
    draw = _draw_task_a if task == 'A' else _draw_task_b
    rng = np.random.default_rng(seed)
    images = np.empty((num, size, size, 3), np.uint8)
    labels = np.empty((num, size, size), np.uint8)
    for i in range(num):
        image, label = draw(rng, size)
        images[i] = np.clip(np.rint(image), 0, 255).astype(np.uint8)
        labels[i] = label
    return images, labels


def task_data(task: str, args):
    """Train and val splits of a task; distinct seeds per task and split. Task B
    trains on its first ``--num-train-b`` images: smaller sets are nested in
    larger ones."""
    base = {'A': 1000, 'B': 2000}[task]
    num_train = args.num_train if task == 'A' else num_train_b(args)
    return dict(train=make_task(task, num_train, args.size, base),
                val=make_task(task, args.num_val, args.size, base + 1),
                classes=TASKS[task]['classes'])


def num_train_b(args) -> int:
    return args.num_train_b or args.num_train


def make_batch(split, indices) -> dict:
    """A batch as an mmseg dataloader gives it: uint8 CHW images + SegDataSamples."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    images, labels = split
    inputs, samples = [], []
    for i in indices:
        inputs.append(torch.from_numpy(images[i]).permute(2, 0, 1).contiguous())
        h, w = labels[i].shape
        sample = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w)))
        sample.gt_sem_seg = PixelData(data=torch.from_numpy(labels[i].astype(np.int64))[None])
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


# ----------------------------------------------------------------------------------
# Models, training, evaluation

def log(msg: str):
    from mmengine.logging import print_log
    print_log(msg, logger='current')


def build_model(backbone_cfg: dict, backbone: str, num_classes: int,
                head_init=None):
    from mmengine.config import ConfigDict
    from mmseg.registry import MODELS
    # ConfigDict as from a config file (EncoderDecoder reads test_cfg.mode).
    model = MODELS.build(ConfigDict(segmentor_config(
        backbone_cfg, backbone_channels(backbone), num_classes)))
    model.init_weights()  # loads the inner backbone's init_cfg checkpoint
    if head_init is not None:
        model.decode_head.load_state_dict(head_init)
    return model


def initial_head(backbone: str, num_classes: int, seed: int) -> dict:
    """The head init of one seed, loaded into every method's model: prompt modules
    built before the head would otherwise shift the random stream per method."""
    from mmseg.registry import MODELS
    torch.manual_seed(seed)
    head = MODELS.build(head_config(backbone_channels(backbone), num_classes))
    head.init_weights()
    return {k: v.clone() for k, v in head.state_dict().items()}


def lr_at(it: int, iters: int, base: float) -> float:
    """Linear warm-up over the first 5% of iterations, then cosine to 0."""
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


def count_params(model, method: str) -> dict:
    """Trainable / total parameter counts, checked against what ``method`` implies
    and against protune_mm's own parameter report."""
    from protune_mm import parameter_report
    n = lambda ps: sum(p.numel() for p in ps)  # noqa: E731
    backbone = model.backbone
    counts = dict(
        total=n(model.parameters()),
        trainable=n(p for p in model.parameters() if p.requires_grad),
        backbone_side_trainable=n(p for p in backbone.parameters() if p.requires_grad),
        head_trainable=n(p for p in model.decode_head.parameters() if p.requires_grad),
        head_total=n(model.decode_head.parameters()))
    if METHODS[method][1] is None:
        counts['backbone_total'] = n(backbone.parameters())
        counts['prompts'] = 0
        expected_backbone = counts['backbone_total']
    else:
        counts['backbone_total'] = n(backbone.backbone.parameters())
        counts['prompts'] = n(backbone.prompts.parameters())
        expected_backbone = counts['prompts']
        frozen_trainable = n(p for p in backbone.backbone.parameters() if p.requires_grad)
        report = parameter_report(model)
        prompts_reported = report.get('prompts', {}).get('trainable', 0)
        if frozen_trainable or report['frozen backbone']['trainable'] \
                or prompts_reported != counts['prompts']:
            raise RuntimeError(
                f'{method}: {frozen_trainable} trainable parameters inside the frozen '
                f'backbone; parameter_report: {dict(report)}, prompts counted here: '
                f"{counts['prompts']}")
    if method == 'frozen' and counts['backbone_side_trainable'] != 0:
        raise RuntimeError(f"head-only has {counts['backbone_side_trainable']} "
                           'trainable backbone-side parameters, expected 0')
    if method in ('protune', 'vpt') and not counts['prompts']:
        raise RuntimeError(f'{method}: no prompt parameters')
    if counts['backbone_side_trainable'] != expected_backbone \
            or counts['head_trainable'] != counts['head_total'] \
            or counts['trainable'] != counts['backbone_side_trainable'] + counts['head_trainable']:
        raise RuntimeError(f'{method}: unexpected trainable parameter counts {counts} '
                           f'(expected {expected_backbone} on the backbone side)')
    counts['prompts_pct_of_backbone'] = round(100 * counts['prompts'] /
                                              counts['backbone_total'], 3)
    return counts


def inner_backbone(model, method: str):
    return model.backbone if METHODS[method][1] is None else model.backbone.backbone


def check_equal(module, reference: dict, what: str) -> int:
    """Raise unless ``module.state_dict()`` (parameters and buffers) equals
    ``reference`` bit for bit; returns the number of tensors compared."""
    state = module.state_dict()
    if set(state) != set(reference):
        raise RuntimeError(f'{what}: keys differ from the checkpoint: missing '
                           f'{sorted(set(reference) - set(state))[:5]}, unexpected '
                           f'{sorted(set(state) - set(reference))[:5]}')
    bad = [k for k, v in state.items()
           if v.dtype != reference[k].dtype or v.shape != reference[k].shape
           or not torch.equal(v, reference[k])]
    if bad:
        raise RuntimeError(f'{what}: {len(bad)} tensors differ from the checkpoint, '
                           f'e.g. {bad[:5]}')
    return len(state)


def load_checkpoint_state(path: str) -> dict:
    return torch.load(path, map_location='cpu', weights_only=True)['state_dict']


def atomic_save(obj, path: str):
    with atomic_write(path) as tmp:
        torch.save(obj, tmp)


# ----------------------------------------------------------------------------------
# The study

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


def _stats(values, digits: int = 2) -> dict:
    return dict(mean=round(statistics.mean(values), digits),
                std=round(statistics.stdev(values), digits) if len(values) > 1 else 0.0)


def summarise(runs: dict, seeds) -> OrderedDict:
    """Per method: mean/std/per-seed mIoU and aAcc, gain over head-only."""
    out = OrderedDict()
    for method, per_seed in runs.items():
        first = per_seed[seeds[0]]
        miou = [per_seed[s]['mIoU'] for s in seeds]
        entry = OrderedDict(
            label=Variant(method).label,
            backbone_cfg=first['backbone_cfg'],
            method_config=first.get('method_config'),
            mIoU=dict(_stats(miou), per_seed={str(s): per_seed[s]['mIoU'] for s in seeds}),
            aAcc=dict(_stats([per_seed[s]['aAcc'] for s in seeds]),
                      per_seed={str(s): per_seed[s]['aAcc'] for s in seeds}),
            per_class_IoU={str(s): per_seed[s]['per_class_IoU'] for s in seeds},
            lr=first['lr'],
            backbone_side_lr=first.get('backbone_side_lr'),
            trainable=first['counts'],
            frozen_check=first['frozen_check'],
            time_s={str(s): per_seed[s]['time_s'] for s in seeds})
        if 'train' in first:
            entry['train_mIoU'] = dict(
                _stats([per_seed[s]['train']['mIoU'] for s in seeds]),
                per_seed={str(s): per_seed[s]['train']['mIoU'] for s in seeds})
        if 'robustness' in first:
            rob = {s: per_seed[s]['robustness'] for s in seeds}
            entry['robustness'] = OrderedDict(
                (k, dict(_stats([rob[s][k] for s in seeds], 3 if k == 'rPC' else 2),
                         per_seed={str(s): rob[s][k] for s in seeds}))
                for k in ('mIoU_clean', 'mPC', 'rPC'))
            entry['robustness']['per_seed_detail'] = {str(s): rob[s] for s in seeds}
        if 'frozen' in runs:
            gains = [per_seed[s]['mIoU'] - runs['frozen'][s]['mIoU'] for s in seeds]
            entry['gain_over_head_only'] = dict(
                _stats(gains), per_seed={str(s): round(g, 2) for s, g in zip(seeds, gains)},
                seeds_better=sum(g > 0 for g in gains))
        out[method] = entry
    full_gain = (out['full']['gain_over_head_only']['mean']
                 if 'full' in out and 'frozen' in out else 0)
    if full_gain > 0:
        # How much of what full fine-tuning gains over head-only a method recovers
        # (means over the seeds; the plain 'full' entry, at its lr, is the 100%).
        for method, entry in out.items():
            if method != 'frozen':
                entry['share_of_full_gain'] = round(
                    entry['gain_over_head_only']['mean'] / full_gain, 3)
    return out


def _label_width(results: dict) -> int:
    return max([17] + [len(m['label']) for res in results.values()
                       for m in res['methods'].values()])


def format_table(results: dict, seeds) -> str:
    w = _label_width(results)
    head = (f"{'backbone':<8} {'method':<{w}} {'lr':>7} {'mIoU mean±sd':>13}  {'mIoU per seed':<20}"
            f"{'aAcc':>6} {'trainable':>10} {'backbone-side':>13} {'gain vs head-only':>33}")
    with_train = any('train_mIoU' in m for res in results.values()
                     for m in res['methods'].values())
    if with_train:
        head += f" {'train mIoU':>11}"
    lines = [head, '-' * len(head)]
    for backbone, res in results.items():
        pre = res['pretrain']
        lines.append(f"{backbone:<8} {'pre-train (A)':<{w}} {'':>7} {pre['mIoU']:>13.2f}  "
                     f"{'task A val':<20}{pre['aAcc']:>6.2f}")
        for method, m in res['methods'].items():
            per_seed = ' '.join(f'{v:.1f}' for v in m['mIoU']['per_seed'].values())
            gain = ''
            if 'gain_over_head_only' in m and method != 'frozen':
                g = m['gain_over_head_only']
                gain = f"{g['mean']:+.2f} ({g['seeds_better']}/{len(seeds)} seeds)"
                if 'share_of_full_gain' in m and method != 'full':
                    gain += f", {m['share_of_full_gain']:.0%} of full's"
            t = m['trainable']
            lines.append(
                f"{backbone:<8} {m['label']:<{w}} {m['lr']:>7.0e} "
                f"{m['mIoU']['mean']:>7.2f}±{m['mIoU']['std']:<5.2f}  {per_seed:<20}"
                f"{m['aAcc']['mean']:>6.2f} {t['trainable']:>10,} "
                f"{t['backbone_side_trainable']:>13,} {gain:>33}"
                + (f" {m['train_mIoU']['mean']:>11.2f}" if with_train else ''))
    return '\n'.join(lines)


def format_robustness_table(results: dict, seeds) -> str:
    """Clean mIoU, mPC and rPC on corrupted task B val images per method."""
    w = _label_width(results)
    head = (f"{'backbone':<8} {'method':<{w}} {'clean mIoU':>11} {'mPC':>13} "
            f"{'rPC':>13}  {'rPC per seed':<20}{'rPC - full':>11}")
    lines = [head, '-' * len(head)]
    for backbone, res in results.items():
        methods = res['methods']
        full = methods.get('full', {}).get('robustness')
        for method, m in methods.items():
            r = m.get('robustness')
            if r is None:
                continue
            per_seed = ' '.join(f'{v:.3f}' for v in r['rPC']['per_seed'].values())
            diff = ('' if full is None or method == 'full'
                    else f"{r['rPC']['mean'] - full['rPC']['mean']:+.3f}")
            lines.append(
                f"{backbone:<8} {m['label']:<{w}} {r['mIoU_clean']['mean']:>11.2f} "
                f"{r['mPC']['mean']:>7.2f}±{r['mPC']['std']:<5.2f} "
                f"{r['rPC']['mean']:>7.3f}±{r['rPC']['std']:<5.3f}  {per_seed:<20}"
                f"{diff:>11}")
    return '\n'.join(lines)


def reproduce_command(args) -> str:
    parts = ['python', 'tools/transfer_study.py',
             '--backbones', *args.backbones, '--methods', *args.methods,
             '--iters-pretrain', str(args.iters_pretrain), '--iters', str(args.iters),
             '--batch', str(args.batch), '--size', str(args.size),
             '--seeds', *map(str, args.seeds), '--lr', repr(args.lr),
             *(['--method-lr', *(f'{m}={v!r}' for m, v in args.method_lr.items())]
               if args.method_lr else []),
             '--lr-pretrain', repr(args.lr_pretrain),
             '--num-train', str(args.num_train),
             *(['--num-train-b', str(args.num_train_b)] if args.num_train_b else []),
             '--num-val', str(args.num_val),
             *(['--eval-train'] if args.eval_train else []),
             *(['--robustness', '--corruptions', *args.corruptions,
                '--severities', *map(str, args.severities),
                '--corruption-seed', str(args.corruption_seed)]
               if args.robustness else []),
             '--threads', str(args.threads), '--work-dir', args.work_dir,
             '--out', args.out]
    return shlex.join(parts)


def run(args) -> dict:
    from mmengine.logging import MMLogger
    from mmseg.utils import register_all_modules
    import protune_mm  # noqa: F401  (registers the wrappers)

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
    table = format_table(results, args.seeds)
    if args.robustness:
        table += ('\n\nCorrupted task B val (protune_mm.Corrupt, '
                  f'{len(args.corruptions)} corruptions x severities '
                  f'{args.severities}):\n' + format_robustness_table(results, args.seeds))
    import mmengine
    import mmseg
    import timm
    report = OrderedDict(
        tool='tools/transfer_study.py',
        command=command,
        wall_time_s=round(wall, 1),
        finished=datetime.now().isoformat(timespec='seconds'),
        environment=dict(python=platform.python_version(), torch=torch.__version__,
                         mmengine=mmengine.__version__, mmseg=mmseg.__version__,
                         timm=timm.__version__, protune_mm=protune_mm.__version__,
                         threads=args.threads, cpu_count=os.cpu_count()),
        settings=dict(
            iters_pretrain=args.iters_pretrain, lr_pretrain=args.lr_pretrain,
            iters=args.iters, lr=args.lr, batch=args.batch,
            size=args.size, seeds=args.seeds, num_train=args.num_train,
            num_train_b=num_train_b(args),
            num_val=args.num_val, eval_train=args.eval_train,
            pretrain_seed=PRETRAIN_SEED,
            method_lr={m: method_lr(args, m) for m in args.methods},
            optimizer=f'AdamW(lr={args.lr}, weight_decay=0) on trainable parameters '
                      'only; the same lr for every method but those in --method-lr',
            schedule=f'linear warm-up {WARMUP_FRACTION:.0%} of iterations, then cosine '
                     'to 0; same data order and head init per seed for every method',
            data_preprocessor=dict(mean=MEAN, std=STD, size_divisor=32),
            robustness=(dict(corruptions=args.corruptions, severities=args.severities,
                             seed=args.corruption_seed,
                             library='imagecorruptions-imaug')
                        if args.robustness else None)),
        tasks={k: dict(v, classes=list(v['classes'])) for k, v in TASKS.items()},
        head=head_config(['<backbone levels>'], len(TASKS['B']['classes'])),
        results=results,
        table=table.splitlines())
    write_json(report, args.out)
    print(table)
    print(f'\nwall time {timedelta(seconds=round(wall))}; JSON written to {args.out}')
    print(f'reproduce: {command}')
    return report


# ----------------------------------------------------------------------------------
# Command line

def _positive(option):
    def convert(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'{option} must be a positive integer, '
                                             f'got {text!r}')
        if value < 1:
            raise argparse.ArgumentTypeError(f'{option} must be a positive integer, '
                                             f'got {value}')
        return value
    return convert


class _Parser(argparse.ArgumentParser):
    """Errors raise ValueError (naming the option) instead of exiting, so main()
    can be called from Python; the command line turns them into a usage error."""

    def error(self, message):
        raise ValueError(message)


def parse_args(argv=None):
    parser = _Parser(description='Transfer study: head-only vs Pro-tuning vs VPT vs '
                     'full fine-tuning from a backbone pre-trained on synthetic task A '
                     'to synthetic task B (CPU).')
    parser.add_argument('--backbones', nargs='+', default=['resnet', 'vit'],
                        help=f'backbones to study, from {list(BACKBONES)}')
    parser.add_argument('--methods', nargs='+', default=list(DEFAULT_METHODS),
                        help=f'methods, from {list(METHODS)}; frozen (head-only) is '
                        'the reference of the gains. A variant: NAME:key=value,... '
                        'with wrapper arguments (protune:hidden_ratio=0.25,'
                        'place=output) or ' + '; '.join(
                            f'{k}: {v}' for k, v in STUDY_OPTIONS.items()))
    parser.add_argument('--iters-pretrain', type=_positive('--iters-pretrain'),
                        default=1500, help="iterations of task A pre-training")
    parser.add_argument('--iters', type=_positive('--iters'), default=500,
                        help='iterations of every task B adaptation')
    parser.add_argument('--batch', type=_positive('--batch'), default=16)
    parser.add_argument('--size', type=_positive('--size'), default=64,
                        help='image side in pixels, a multiple of 32')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2],
                        help='adaptation seeds (head/prompt init, data order)')
    parser.add_argument('--lr', type=float, default=1e-2,
                        help='AdamW learning rate of task B, the same for every method')
    parser.add_argument('--method-lr', nargs='+', default=[], metavar='METHOD=LR',
                        help='learning rate of task B for some methods instead of --lr, '
                        'e.g. full=1e-3')
    parser.add_argument('--lr-pretrain', type=float, default=1e-2,
                        help='AdamW learning rate of task A pre-training')
    parser.add_argument('--num-train', type=_positive('--num-train'), default=1000,
                        help='training images per task')
    parser.add_argument('--num-train-b', type=_positive('--num-train-b'), default=None,
                        help='task B training images (its first N: smaller sets are '
                        'nested in larger ones), for data-scale runs; default '
                        '--num-train')
    parser.add_argument('--num-val', type=_positive('--num-val'), default=200,
                        help='val images per task')
    parser.add_argument('--eval-train', action='store_true',
                        help='also evaluate every adapted model on the task B images it '
                        'trained on (the first --num-val of them): train mIoU, for '
                        'telling overfitting from underfitting')
    parser.add_argument('--robustness', action='store_true',
                        help='also evaluate every adapted model on corrupted task B '
                        'val images (tools/test_robustness.py\'s corruptions): clean '
                        'mIoU, mPC, rPC')
    parser.add_argument('--corruptions', nargs='*', default=['benchmark'],
                        help='with --robustness: a set (benchmark, noise, blur, '
                        'weather, digital, all) or corruption names')
    parser.add_argument('--severities', nargs='+', default=['1', '2', '3', '4', '5'],
                        help='with --robustness: severities, from 1-5')
    parser.add_argument('--corruption-seed', type=int, default=0,
                        help='with --robustness: the seed the per-image seeds derive from')
    parser.add_argument('--threads', type=_positive('--threads'), default=2,
                        help='torch threads')
    parser.add_argument('--log-interval', type=_positive('--log-interval'), default=50)
    parser.add_argument('--work-dir', default='work_dirs/transfer_study',
                        help='checkpoints and logs')
    parser.add_argument('--out', default='benchmarks/transfer_study.json',
                        help='JSON results (written atomically)')
    args = parser.parse_args(argv)
    bad = [v for v in args.backbones if v not in BACKBONES]
    if bad:
        raise ValueError(f'--backbones: unknown value(s) {bad}; allowed: {list(BACKBONES)}')
    args.methods = [check_variant(m) for m in args.methods]
    for option, values in (('--backbones', args.backbones), ('--methods', args.methods)):
        if len(set(values)) != len(values):
            raise ValueError(f'{option}: repeated value(s) in {values}')
    if len(set(args.seeds)) != len(args.seeds):
        raise ValueError(f'--seeds: repeated seed(s) in {args.seeds}')
    if args.size % 32 or args.size < 32:
        raise ValueError(f'--size must be a multiple of 32 (the backbones downsample '
                         f'by 32), got {args.size}')
    from protune_mm.robustness import check_severities, resolve_corruptions
    args.corruptions = resolve_corruptions(args.corruptions)
    args.severities = [v for v in check_severities(args.severities) if v > 0]
    if args.robustness and not (args.corruptions and args.severities):
        raise ValueError('--robustness needs at least one corruption and one '
                         'severity from 1-5')
    args.method_lr = _method_lrs(args.method_lr, args.methods)
    for option, value in (('--lr', args.lr), ('--lr-pretrain', args.lr_pretrain),
                          *((f'--method-lr {m}', v) for m, v in args.method_lr.items())):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f'{option} must be a positive number, got {value}')
    return args


def _method_lrs(items, methods) -> dict:
    """``['full=1e-3', ...]`` -> ``{'full': 0.001}``; names the bad item."""
    out = OrderedDict()
    for item in items:
        method, sep, value = item.rpartition('=')
        if not sep or method not in methods:
            raise ValueError(f'--method-lr: expected METHOD=LR with METHOD one of the '
                             f'studied methods {list(methods)}, got {item!r}')
        if method in out:
            raise ValueError(f'--method-lr: {method} given twice')
        try:
            out[method] = float(value)
        except ValueError:
            raise ValueError(f'--method-lr {method}: {value!r} is not a number')
    return out


def method_lr(args, method: str) -> float:
    """``lr=`` of the variant, else --method-lr of the entry, else --lr."""
    return Variant(method).options.get('lr', args.method_lr.get(method, args.lr))


def main(argv=None) -> dict:
    return run(parse_args(argv))
