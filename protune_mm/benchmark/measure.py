"""One benchmark variant measured in this process (run by the benchmark command in
a fresh process per variant, so peak memory and allocator state of one variant
never leak into the next).

Measured: trainable, backbone (frozen) and prompt parameters; checkpoint, task
pack and prompt bytes; inference latency (``model.test_step`` in eval mode under
``no_grad`` on the initial weights, which all variants share but for the
prompts, so the heads do the same work; the detections per image are recorded);
peak memory of training (CPU: peak RSS above the process baseline taken before
the model is built; CUDA: ``torch.cuda.max_memory_allocated``) over
``max(warmup, 2)`` steps of ``model.train_step`` through an ``OptimWrapper`` with
AdamW; training step time (median over ``steps`` steps, each started from the
same weights, optimizer state and random seed, restored untimed, so the heads'
work does not drift as the model learns).
"""
import copy
import os
import resource
import statistics
import time

from protune_mm.cli.config import load_config

from .batch import num_classes, synthetic_batch
from .model import model_config


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


def sizes(model) -> dict:
    """Parameter counts and bytes: the frozen set and the rest of each method
    (from the methods' recorded frozen keys), or the whole backbone of a model
    without a method (full fine-tuning, where a "pack" is the checkpoint)."""
    from protune_mm import find_wrappers, pack_nbytes
    params = list(model.named_parameters())
    out = dict(trainable_params=sum(p.numel() for _, p in params if p.requires_grad),
               total_params=sum(p.numel() for _, p in params))
    wrappers = find_wrappers(model)
    if wrappers:
        split = [(k in m.frozen_keys, p.numel()) for _, m in wrappers
                 for k, p in m.named_parameters()]
        backbone_params = sum(n for frozen, n in split if frozen)
        prompt_params = sum(n for frozen, n in split if not frozen)
        nbytes = pack_nbytes(model)
    else:
        backbone_params = sum(p.numel() for p in model.backbone.parameters())
        prompt_params = 0
        full = sum(v.numel() * v.element_size() for v in model.state_dict().values())
        nbytes = dict(full=full, task=full, prompts=0)
    out.update(backbone_params=backbone_params, prompt_params=prompt_params,
               prompt_pct_of_backbone=100.0 * prompt_params / backbone_params,
               checkpoint_bytes=nbytes['full'], task_pack_bytes=nbytes['task'],
               prompt_bytes=nbytes['prompts'])
    return out


def run_variant(args, variant: dict) -> dict:
    """Build ``variant`` of ``args.config`` and measure it (sizes only with
    ``args.no_timing``)."""
    import torch
    from mmengine.optim import OptimWrapper
    from mmengine.registry import MODELS, init_default_scope

    import protune_mm  # noqa: F401  (registers the methods)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cfg = load_config(args.config)
    scope = cfg.get('default_scope', 'mmdet')
    init_default_scope(scope)
    task = 'det' if scope == 'mmdet' else 'seg'
    model_cfg = model_config(cfg, variant)
    data = synthetic_batch(task, args.batch, args.size, num_classes(model_cfg))

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

    result = dict(variant=variant['label'], method=variant['method'],
                  memory_efficient=variant['memory_efficient'], kwargs=variant['kwargs'],
                  **sizes(model))
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
