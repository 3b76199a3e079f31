"""Cost of full fine-tuning vs frozen head-only vs Pro-tuning vs VPT on one model.

Each variant runs in its own fresh process (so peak memory and allocator state of
one variant never leak into the next); variants are interleaved over ``--repeats``
rounds and the median of each measure over rounds is reported, with ratios to the
first variant (full fine-tuning by default). Weights are random (``init_cfg=None``,
no network); the batch is a fixed synthetic one.

Measured per variant:
  trainable params, backbone params, prompt params (% of the backbone);
  checkpoint bytes (full state dict), task-pack bytes (everything but the frozen
  backbone) and prompt bytes; inference latency (median of ``model.test_step`` in
  eval mode under ``no_grad``, on the initial weights, which all variants share
  but for the prompts, so the heads do the same work; the detections per image are
  recorded); peak memory of training (CPU: peak RSS above the process baseline
  taken before the model is built; CUDA: ``torch.cuda.max_memory_allocated``) over
  ``max(--warmup, 2)`` steps of ``model.train_step`` through an ``OptimWrapper``
  with AdamW; training step time (median over ``--steps`` steps, each started from
  the same weights, optimizer state and random seed, restored untimed, so the
  heads' work does not drift as the model learns).

Examples::

    python tools/benchmark.py mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py \\
        --methods full frozen protune protune+me vpt vpt+me --repeats 3 \\
        --out benchmarks/mask-rcnn_r50_cpu.json
    python tools/benchmark.py mmseg::upernet/upernet_r50_4xb2-40k_cityscapes-512x1024.py \\
        --methods full frozen protune+me --steps 3 --repeats 1
    # a variant with its own options: LABEL=METHOD[+me][:JSON kwargs]
    python tools/benchmark.py CONFIG --methods full \\
        'pt_s123=protune+me:{"stages": [1, 2, 3]}'

``+me`` builds the wrapper with ``memory_efficient=True`` (lean frozen ops, see
``protune_mm/ops/frozen_ops.py``; without it the variant is built with
``memory_efficient=False``, the plain autograd path).
"""
import argparse
import copy
import json
import os
import os.path as osp
import resource
import statistics
import subprocess
import sys
import time

from protune_mm.fileio import write_json

METHODS = {
    'full': None,  # the stock model, trained as its config says
    'frozen': 'protune_mm.Frozen',
    'protune': 'protune_mm.ProTune',
    'vpt': 'protune_mm.VPT',
}
RESULT_TAG = 'BENCHMARK_RESULT '


# ----------------------------------------------------------------------------------
# Variants

def parse_variant(spec: str) -> dict:
    """``[LABEL=]METHOD[+me][:JSON]`` -> dict(label, method, memory_efficient, kwargs)."""
    label, _, rest = spec.partition('=') if '=' in spec.split(':', 1)[0] else ('', '', spec)
    name, _, kwargs = rest.partition(':')
    memory_efficient = name.endswith('+me')
    method = name[:-3] if memory_efficient else name
    if method not in METHODS:
        raise ValueError(f'--methods: unknown method {method!r} in {spec!r}; allowed: '
                         f'{sorted(METHODS)} (optionally with +me and :JSON kwargs)')
    if memory_efficient and method == 'full':
        raise ValueError(f"--methods: '+me' needs a frozen backbone, not {spec!r}")
    try:
        kwargs = json.loads(kwargs) if kwargs else {}
    except json.JSONDecodeError as e:
        raise ValueError(f'--methods: bad JSON kwargs in {spec!r}: {e}') from e
    if not isinstance(kwargs, dict):
        raise ValueError(f'--methods: kwargs of {spec!r} must be a JSON object')
    return dict(label=label or name, method=method,
                memory_efficient=memory_efficient, kwargs=kwargs)


def replace_syncbn(cfg):
    """SyncBN needs a process group; one CPU/GPU process uses plain BN."""
    if isinstance(cfg, dict):
        if cfg.get('type') == 'SyncBN':
            cfg['type'] = 'BN'
        for v in cfg.values():
            replace_syncbn(v)
    elif isinstance(cfg, (list, tuple)):
        for v in cfg:
            replace_syncbn(v)


def load_config(path: str):
    """A config file, or ``package::path`` inside an installed OpenMMLab package."""
    from mmengine.config import Config
    if '::' in path:
        from mmengine.hub import get_config
        return get_config(path)
    return Config.fromfile(path)


def model_config(cfg, variant: dict):
    """The model config of a variant: random init, backbone wrapped as asked."""
    model = copy.deepcopy(cfg.model)
    model.pop('pretrained', None)
    backbone = model['backbone']
    config_kwargs = {}
    if str(backbone['type']).split('.')[-1] in ('Frozen', 'ProTune', 'VPT'):
        # A prompt config: its inner backbone is the stock one; its own method
        # options are the defaults of the same method.
        if backbone['type'] == METHODS[variant['method']]:
            config_kwargs = {k: v for k, v in backbone.items()
                             if k not in ('type', 'backbone', 'init_cfg', 'pretrained')}
        backbone = backbone['backbone']
        model['backbone'] = backbone
    backbone['init_cfg'] = None
    backbone.pop('pretrained', None)
    replace_syncbn(model)
    wrapper = METHODS[variant['method']]
    if wrapper is not None:
        kwargs = dict(config_kwargs, **variant['kwargs'])
        if variant['method'] == 'vpt' and 'ResNet' in str(backbone.get('type')) \
                and 'deep' not in kwargs:
            kwargs['deep'] = False  # ResNet takes pad prompts (VPT-shallow)
        # Without +me the plain autograd path (lean ops are on by default).
        kwargs['memory_efficient'] = variant['memory_efficient']
        model['backbone'] = dict(type=wrapper, backbone=backbone, **kwargs)
    return model


# ----------------------------------------------------------------------------------
# Synthetic batch

def parse_size(size) -> tuple:
    """``--size``: ``N`` (square) or ``WxH`` (e.g. ``1333x800``), as (width, height)."""
    w, _, h = str(size).partition('x')
    return int(w), int(h or w)


def synthetic_batch(task: str, batch: int, size, num_classes: int, seed: int = 0):
    """A fixed batch of ``batch`` uint8 images of ``size`` (``N`` or ``WxH``) with a
    few boxes + masks (detection) or a label map (segmentation)."""
    import numpy as np
    import torch
    width, height = parse_size(size)
    rng = np.random.RandomState(seed)
    inputs, samples = [], []
    for i in range(batch):
        inputs.append(torch.from_numpy(
            rng.randint(0, 256, (3, height, width), dtype=np.uint8)))
        shape = (height, width)
        meta = dict(img_id=i, img_path=f'synthetic_{i}.png', img_shape=shape,
                    ori_shape=shape, pad_shape=shape,
                    scale_factor=(1.0, 1.0), flip=False, flip_direction=None)
        if task == 'det':
            from mmdet.structures import DetDataSample
            from mmdet.structures.mask import BitmapMasks
            from mmengine.structures import InstanceData
            n = 4
            extent = np.array([width, height], np.float64)
            xy = rng.uniform(0, 1, (n, 2)) * extent * 0.6
            wh = rng.uniform(0.15, 0.4, (n, 2)) * extent
            boxes = np.concatenate([xy, np.minimum(xy + wh, extent - 1)], 1)
            masks = np.zeros((n, height, width), np.uint8)
            for k, (x1, y1, x2, y2) in enumerate(boxes.astype(int)):
                masks[k, y1:y2, x1:x2] = 1
            gt = InstanceData(
                bboxes=torch.tensor(boxes, dtype=torch.float32),
                labels=torch.tensor(rng.randint(0, num_classes, n)),
                masks=BitmapMasks(masks, height, width))
            sample = DetDataSample(metainfo=meta)
            sample.gt_instances = gt
        else:
            from mmengine.structures import PixelData
            from mmseg.structures import SegDataSample
            sample = SegDataSample(metainfo=meta)
            labels = torch.from_numpy(rng.randint(0, num_classes,
                                                  (height // 16, width // 16)))
            labels = labels.repeat_interleave(16, 0).repeat_interleave(16, 1)
            sample.gt_sem_seg = PixelData(data=labels[None].long())
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def _num_classes(model_cfg) -> int:
    for key in ('roi_head', 'decode_head', 'bbox_head'):
        head = model_cfg.get(key)
        if head is None:
            continue
        if key == 'roi_head':
            head = head['bbox_head']
        if isinstance(head, (list, tuple)):
            head = head[0]
        if 'num_classes' in head:
            return int(head['num_classes'])
    return 10


# ----------------------------------------------------------------------------------
# Memory

def _rss_bytes() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM); False where not allowed."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def _peak_rss_bytes() -> int:
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# ----------------------------------------------------------------------------------
# One variant (worker process)

def run_variant(args, variant: dict) -> dict:
    import torch
    from mmengine.optim import OptimWrapper
    from mmengine.registry import MODELS, init_default_scope

    from protune_mm import find_wrappers, pack_nbytes  # also registers the wrappers

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cfg = load_config(args.config)
    scope = cfg.get('default_scope', 'mmdet')
    init_default_scope(scope)
    task = 'det' if scope == 'mmdet' else 'seg'
    model_cfg = model_config(cfg, variant)
    data = synthetic_batch(task, args.batch, args.size, _num_classes(model_cfg))

    cuda = device.type == 'cuda'
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
        base_mem = torch.cuda.memory_allocated(device)
    else:
        peak_reset = _reset_peak_rss()
        base_mem = _rss_bytes() if peak_reset else _peak_rss_bytes()

    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    # Same seed before init_weights: backbone, neck and heads get the same values
    # in every variant (prompts are created, not re-initialised, by init_weights),
    # so the test-time work (number of detections) is the same too.
    torch.manual_seed(1)
    model.init_weights()
    model.to(device)

    # -- sizes ---------------------------------------------------------------------
    params = list(model.named_parameters())
    trainable = sum(p.numel() for _, p in params if p.requires_grad)
    wrappers = find_wrappers(model)
    if wrappers:
        _, wrapper = wrappers[0]
        backbone_params = sum(p.numel() for p in wrapper.backbone.parameters())
        prompt_params = sum(p.numel() for p in wrapper.prompts.parameters())
        sizes = pack_nbytes(model)
    else:
        backbone_params = sum(p.numel() for p in model.backbone.parameters())
        prompt_params = 0
        # Full fine-tuning: there is no frozen part, a "pack" is the checkpoint.
        full = sum(v.numel() * v.element_size() for v in model.state_dict().values())
        sizes = dict(full=full, task=full, prompts=0)
    checkpoint_bytes, task_bytes, prompt_bytes = (sizes['full'], sizes['task'],
                                                  sizes['prompts'])

    result = dict(
        variant=variant['label'], method=variant['method'],
        memory_efficient=variant['memory_efficient'], kwargs=variant['kwargs'],
        trainable_params=trainable, total_params=sum(p.numel() for _, p in params),
        backbone_params=backbone_params, prompt_params=prompt_params,
        prompt_pct_of_backbone=100.0 * prompt_params / backbone_params,
        checkpoint_bytes=checkpoint_bytes, task_pack_bytes=task_bytes,
        prompt_bytes=prompt_bytes)
    if args.no_timing:
        return result

    def sync():
        if cuda:
            torch.cuda.synchronize(device)

    # -- inference ---------------------------------------------------------------------
    # On the initial weights, which every variant shares except for its prompts
    # (ProTune starts as the identity), so the heads get the same features and do
    # the same work: the latency difference is the method's own cost. After
    # training, each variant's heads would keep a different number of detections.
    model.eval()
    latencies = []
    with torch.no_grad():
        for i in range(args.warmup + args.infer_steps):
            batch = copy.deepcopy(data)
            sync()
            t0 = time.perf_counter()
            outputs = model.test_step(batch)
            sync()
            if i >= args.warmup:
                latencies.append(time.perf_counter() - t0)
        detections = [len(o.pred_instances) for o in outputs
                      if 'pred_instances' in o]
    if not cuda and peak_reset:
        _reset_peak_rss()  # the peak below is the training peak

    # -- training steps -------------------------------------------------------------
    optim = OptimWrapper(torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-4,
        weight_decay=0.05))
    model.train()
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    losses = []
    for i in range(max(args.warmup, 2)):  # 2+: the second step holds AdamW state
        losses.append(float(model.train_step(copy.deepcopy(data), optim)['loss']))
    if cuda:
        peak = torch.cuda.max_memory_allocated(device) - base_mem
    else:
        peak = _peak_rss_bytes() - base_mem
    # Every timed step starts from the same weights, optimizer state and random
    # state: as a model trains, its RPN keeps more positive proposals and the mask
    # head's work grows, which would otherwise drift into the step times (and
    # differently per variant). Restored outside the timed region.
    model_state = copy.deepcopy(model.state_dict())
    optim_state = copy.deepcopy(optim.state_dict())
    step_times = []
    for i in range(args.steps):
        model.load_state_dict(model_state)
        optim.load_state_dict(optim_state)
        batch = copy.deepcopy(data)  # heads may edit the samples in place
        torch.manual_seed(2)
        sync()
        t0 = time.perf_counter()
        log_vars = model.train_step(batch, optim)
        sync()
        step_times.append(time.perf_counter() - t0)
        losses.append(float(log_vars['loss']))
    del model_state, optim_state

    result.update(step_time_s=statistics.median(step_times), step_times_s=step_times,
                  peak_mem_bytes=peak, infer_latency_s=statistics.median(latencies),
                  infer_latencies_s=latencies, detections=detections,
                  first_loss=losses[0],
                  last_loss=losses[-1], device=str(device),
                  threads=torch.get_num_threads())
    return result


# ----------------------------------------------------------------------------------
# Orchestration

MEASURES = [  # key, column title, ratio?
    ('trainable_params', 'trainable', True),
    ('prompt_pct_of_backbone', 'prompt %bb', False),
    ('checkpoint_bytes', 'ckpt MB', False),
    ('task_pack_bytes', 'pack MB', True),
    ('step_time_s', 'step s', True),
    ('peak_mem_bytes', 'peak MiB', True),
    ('infer_latency_s', 'infer s', True),
]


def aggregate(runs: list) -> dict:
    """Median over rounds of every numeric measure of each variant."""
    out = {}
    for label in dict.fromkeys(r['variant'] for r in runs):
        mine = [r for r in runs if r['variant'] == label]
        agg = dict(mine[0])
        for key, _, _ in MEASURES:
            values = [r[key] for r in mine if key in r]
            if values:
                agg[key] = statistics.median(values)
        agg['rounds'] = len(mine)
        out[label] = agg
    return out


def _fmt(key, value):
    if key.endswith('_bytes'):
        scale = 2**20 if key == 'peak_mem_bytes' else 1e6
        return f'{value / scale:.1f}'
    if key == 'trainable_params':
        return f'{value / 1e6:.2f}M'
    if key == 'prompt_pct_of_backbone':
        return f'{value:.2f}'
    return f'{value:.3f}'


def format_table(agg: dict, reference: str) -> str:
    ref = agg[reference]
    keys = [m for m in MEASURES if m[0] in ref]
    header = ['variant'] + [title for _, title, _ in keys] + \
        [f'{title} x' for key, title, ratio in keys if ratio]
    rows = [header]
    for label, r in agg.items():
        row = [label] + [_fmt(k, r[k]) for k, _, _ in keys]
        row += [f'{r[k] / ref[k]:.3f}' if ref[k] else '-' for k, _, ratio in keys
                if ratio]
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ['  '.join(c.rjust(w) if j else c.ljust(w)
                       for j, (c, w) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, '-' * len(lines[0]))
    return '\n'.join(lines) + f'\n(x = ratio to {reference!r})'


def draw_chart(agg: dict, reference: str, path: str, title: str):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    ref = agg[reference]
    keys = [(k, t) for k, t, ratio in MEASURES if ratio and k in ref]
    labels = list(agg)
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(keys), 3.6))
    width = 0.8 / len(labels)
    for i, label in enumerate(labels):
        ratios = [agg[label][k] / ref[k] for k, _ in keys]
        bars = ax.bar([j + i * width for j in range(len(keys))], ratios, width,
                      label=label)
        for bar, v in zip(bars, ratios):
            ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), f'{v:.2f}',
                    ha='center', va='bottom', fontsize=6)
    ax.axhline(1.0, color='k', lw=0.6)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(keys))])
    ax.set_xticklabels([t for _, t in keys])
    ax.set_ylabel(f'ratio to {reference}')
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _worker_cmd(args, spec: str) -> list:
    # The worker is this module, run by module name so it works from any folder.
    cmd = [sys.executable, '-m', 'protune_mm.benchmark.model', args.config,
           '--worker', spec, '--device', args.device, '--batch', str(args.batch), '--size',
           str(args.size), '--warmup', str(args.warmup), '--steps', str(args.steps),
           '--infer-steps', str(args.infer_steps), '--threads', str(args.threads)]
    if args.no_timing:
        cmd.append('--no-timing')
    return cmd


def run_all(args) -> list:
    specs = args.methods
    runs = []
    for r in range(args.repeats):
        # Interleave, reversing the order every other round, so a slow spell of a
        # shared machine does not hit the same variant every time.
        order = specs if r % 2 == 0 else specs[::-1]
        for spec in order:
            t0 = time.time()
            proc = subprocess.run(_worker_cmd(args, spec), capture_output=True, text=True)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)]
            if proc.returncode or not lines:
                sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-6000:])
                raise RuntimeError(f'variant {spec!r} failed (exit {proc.returncode})')
            result = json.loads(lines[-1][len(RESULT_TAG):])
            result['round'] = r
            runs.append(result)
            print(f'[round {r + 1}/{args.repeats}] {result["variant"]}: '
                  + ', '.join(f'{k}={_fmt(k, result[k])}' for k, _, _ in MEASURES
                              if k in result) + f' ({time.time() - t0:.0f}s)',
                  flush=True)
    return runs


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config', help='model config, e.g. '
                   'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py')
    p.add_argument('--methods', nargs='+', default=['full', 'frozen', 'protune', 'vpt'],
                   help='variants [LABEL=]METHOD[+me][:JSON]; METHOD in '
                   f'{sorted(METHODS)}; the first is the reference of the ratios')
    p.add_argument('--device', default='cpu', help="'cpu' or 'cuda[:N]'")
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--size', default='320',
                   help="image size: N (square) or WxH, e.g. 1333x800")
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--steps', type=int, default=5, help='timed training steps')
    p.add_argument('--infer-steps', type=int, default=5)
    p.add_argument('--repeats', type=int, default=1,
                   help='interleaved rounds of all variants (median over rounds)')
    p.add_argument('--threads', type=int, default=0,
                   help='torch intra-op threads (0: torch default)')
    p.add_argument('--no-timing', action='store_true',
                   help='sizes only (no training or inference)')
    p.add_argument('--out', help='JSON file of all runs and the medians')
    p.add_argument('--chart', help='PNG chart of the ratios (default: --out with .png)')
    p.add_argument('--worker', help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if min(parse_size(args.size)) < 1:
        raise ValueError('--size must be >= 1')
    for field in ('batch', 'steps', 'infer_steps', 'repeats'):
        if getattr(args, field) < 1:
            raise ValueError(f'--{field.replace("_", "-")} must be >= 1')
    if args.warmup < 0 or args.threads < 0:
        raise ValueError('--warmup and --threads must be >= 0')
    if args.device != 'cpu' and not args.device.startswith('cuda'):
        raise ValueError(f"--device must be 'cpu' or 'cuda[:N]', got {args.device!r}")
    return args


def main(argv=None):
    try:  # bad options: a usage error naming the option, not a traceback
        args = parse_args(argv)
        variants = [parse_variant(s) for s in args.methods]
        labels = [v['label'] for v in variants]
        if len(set(labels)) != len(labels):
            raise ValueError(f'--methods: variant labels must be unique, got {labels}')
    except ValueError as e:
        sys.exit(f'benchmark.py: error: {e}')
    if args.worker:
        result = run_variant(args, parse_variant(args.worker))
        print(RESULT_TAG + json.dumps(result), flush=True)
        return
    runs = run_all(args)
    agg = aggregate(runs)
    table = format_table(agg, labels[0])
    print(f'\n{args.config}  device={args.device} batch={args.batch} '
          f'size={args.size} steps={args.steps} repeats={args.repeats}')
    print(table)
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        info = dict(config=args.config, device=args.device, batch=args.batch,
                    size=int(args.size) if args.size.isdigit() else args.size,
                    warmup=args.warmup, steps=args.steps,
                    infer_steps=args.infer_steps, repeats=args.repeats,
                    threads=args.threads, reference=labels[0],
                    command=' '.join(sys.argv), load_avg=os.getloadavg())
        # Atomic: a crash mid-write leaves the previous file, not half a JSON.
        write_json(dict(info=info, table=table, median=agg, runs=runs), args.out,
                   indent=1)
        if not args.no_timing:
            chart = args.chart or osp.splitext(args.out)[0] + '.png'
            try:
                draw_chart(agg, labels[0], chart,
                           f'{osp.basename(args.config)} ({args.device}, batch '
                           f'{args.batch}, %dx%d)' % parse_size(args.size))
                print(f'wrote {args.out} and {chart}')
            except ImportError:
                print(f'wrote {args.out}; no chart: matplotlib is not installed')


if __name__ == '__main__':
    main()
