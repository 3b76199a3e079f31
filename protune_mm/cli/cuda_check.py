"""GPU acceptance check: run it once on a new GPU machine after ``make setup``.

    python tools/cuda_check.py [--out FILE.json] [--work-dir DIR] [--skip ops train ddp bench]

The first line says what was found; then the checks run; one table and one JSON:

  ops    mmcv's RoIAlign (forward, input gradient), nms (kept indices) and
         sigmoid_focal_loss (forward, gradient) on CUDA against a CPU reference
         (mmcv's CPU kernels; mmcv has none for the focal loss, so mmdet's formula
         in plain torch), within ``TOLERANCES``;
  train  every config of configs/det and configs/seg, scaled down (tiny backbone, 128 px
         synthetic COCO / ADE20K data, ``--iters`` iterations), with fp16 AMP and bf16
         where the GPU has it: losses finite, frozen tensors bit-identical, prompts moved;
  ddp    the scaled-down Pro-tuned Mask R-CNN and UPerNet through
         tools/dist_train.sh, one process per GPU, NCCL;
  bench  tools/benchmark.py --device cuda on ``BENCHMARKS`` (UPerNet R50, Swin-T, ViT-B;
         Mask R-CNN R50, Swin-T): full, frozen, Pro-tuning and VPT as shipped.

Without a GPU only the CPU references of the ops run; without mmcv CUDA ops what
needs them (the ops, the det configs, Mask R-CNN) is skipped, a row with its reason.

Exit codes: 0 every check ran and passed; 1 a check failed; 3 nothing failed but
checks were skipped (no GPU, or mmcv without CUDA ops); 2 bad arguments.
"""
import argparse
import glob
import json
import math
import os
import os.path as osp
import subprocess
import sys
import tempfile
import time
import traceback

from ..fileio import write_json
from .config import load_config, shipped
from .cuda_env import describe, environment, last_line
from .scaled_config import shrink_for_training, synthetic_data

EXIT_OK, EXIT_FAILED, EXIT_SKIPPED = 0, 1, 3
CHECKS = ('ops', 'train', 'ddp', 'bench')
#: CUDA vs CPU, float32. The kernels differ in summation order and atomics only.
TOLERANCES = {
    'RoIAlign': dict(atol=1e-5, rtol=1e-4),
    'nms': 'identical kept indices',
    'sigmoid_focal_loss': dict(atol=1e-5, rtol=1e-4),
}
#: The benchmark rows (issue 22's five models): the stock model, frozen, Pro-tuning and
#: VPT as shipped (lean frozen ops, ``+me``, where the family has them). ``full`` of a
#: shipped prompt config (``protune_mm::``) trains its inner backbone as stock would.
LEAN, PLAIN = ('full', 'frozen', 'protune+me', 'vpt+me'), ('full', 'frozen', 'protune', 'vpt')
BENCHMARKS = [
    ('UPerNet R50', 'mmseg::upernet/upernet_r50_4xb4-80k_ade20k-512x512.py', '512x512', 4, LEAN),
    ('UPerNet Swin-T', 'protune_mm::seg/upernet_protune_swin-t_ade20k.py', '512x512', 4, PLAIN),
    ('UPerNet ViT-B', 'protune_mm::seg/upernet_protune_vit-b_ade20k.py', '512x512', 4, PLAIN),
    ('Mask R-CNN R50', 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', '1333x800', 2, LEAN),
    ('Mask R-CNN Swin-T', 'protune_mm::det/mask_rcnn_protune_swin-t.py', '1333x800', 2, PLAIN),
]
T0 = time.time()


class Report:
    """The rows; the JSON is rewritten after each, so a run cut short keeps them."""

    def __init__(self, out: str, env: dict):
        self.rows, self.out, self.env = [], out, env

    def add(self, check: str, name: str, status: str, detail: str = '', **data):
        row = dict(check=check, name=name, status=status, detail=detail, **data)
        self.rows.append(row)
        self.save(finished=False)
        print(f'[cuda_check {time.time() - T0:5.0f}s] {check:5s} {name}: {status}'
              + (f' ({detail})' if detail else ''), flush=True)
        return row

    def table(self) -> str:
        from prettytable import PrettyTable
        table = PrettyTable(['check', 'result', 'detail'], align='l')
        table.max_width['detail'] = 100
        table.add_rows([[r['check'] + ' ' + r['name'], r['status'], r['detail']]
                        for r in self.rows])
        return table.get_string()

    def save(self, finished: bool):
        write_json(dict(environment=self.env, tolerances=TOLERANCES, finished=finished,
                        exit_code=self.exit_code(), seconds=round(time.time() - T0, 1),
                        checks=self.rows), self.out, indent=1)

    def exit_code(self) -> int:
        statuses = {r['status'] for r in self.rows}
        if 'FAILED' in statuses:
            return EXIT_FAILED
        return EXIT_SKIPPED if 'skipped' in statuses else EXIT_OK


def _guard(report: Report, check: str, name: str, fn, *args):
    """Run one check; an exception is a failed row, not the end of the run."""
    t = time.time()
    try:
        status, detail, data = fn(*args)
    except Exception as e:  # noqa: BLE001
        status, detail, data = 'FAILED', f'{type(e).__name__}: {e}'.splitlines()[0][:300], {}
        data['traceback'] = traceback.format_exc()
    report.add(check, name, status, detail, seconds=round(time.time() - t, 1), **data)


# ----------------------------------------------------------------------------------
# ops: mmcv's CUDA kernels against CPU

def _close(a, b, tol) -> tuple:
    import torch
    err = (a.double() - b.double()).abs().max().item() if a.numel() else 0.0
    return torch.allclose(a.double(), b.double(), **tol), err


def focal_loss_reference(logits, target, gamma=2.0, alpha=0.25):
    """mmdet's py_sigmoid_focal_loss (mmcv has no CPU kernel) on class indices, as
    mmcv's kernel takes them (index C = background)."""
    import torch.nn.functional as F
    from mmdet.models.losses.focal_loss import py_sigmoid_focal_loss
    one_hot = F.one_hot(target, logits.size(1) + 1)[:, :-1].type_as(logits)
    return py_sigmoid_focal_loss(logits, one_hot, gamma=gamma, alpha=alpha, reduction='none')


def _op_cases():
    """name -> (inputs on CPU, function(device inputs) -> tensors to compare)."""
    import torch
    from mmcv.ops import RoIAlign, nms, sigmoid_focal_loss
    g = torch.Generator().manual_seed(0)
    feat = torch.rand(2, 16, 40, 48, generator=g)
    xy = torch.rand(32, 2, generator=g) * 70
    wh = torch.rand(32, 2, generator=g) * 30 + 2
    rois = torch.cat([torch.randint(0, 2, (32, 1), generator=g).float(), xy, xy + wh], 1)
    roi_align = RoIAlign((7, 7), spatial_scale=0.5, sampling_ratio=2, aligned=True)

    def run_roi_align(f, r):
        f = f.clone().requires_grad_(True)
        out = roi_align(f, r)
        out.backward(torch.ones_like(out))
        return [out.detach(), f.grad]

    xy = torch.rand(300, 2, generator=g) * 200
    boxes = torch.cat([xy, xy + torch.rand(300, 2, generator=g) * 60 + 4], 1)
    scores = torch.randperm(300, generator=g).float() / 300  # distinct: no ties to break

    def run_nms(b, s):
        return [nms(b, s, 0.5)[1].long()]

    # Moderate logits: mmcv's kernel takes log(1 - p) in float32, which loses digits
    # for saturated p that a tolerance should not have to absorb.
    logits = torch.randn(64, 20, generator=g) * 1.5
    labels = torch.randint(0, 21, (64,), generator=g)  # 20 = background

    def run_focal(x, t, reference=False):
        x = x.clone().requires_grad_(True)
        out = (focal_loss_reference(x.double(), t).float() if reference else
               sigmoid_focal_loss(x, t, 2.0, 0.25, None, 'none'))
        out.backward(torch.ones_like(out))
        return [out.detach(), x.grad]

    return {
        'RoIAlign': ((feat, rois), run_roi_align, run_roi_align),
        'nms': ((boxes, scores), run_nms, run_nms),
        'sigmoid_focal_loss': ((logits, labels), lambda x, t: run_focal(x, t, True), run_focal),
    }


def check_ops(env: dict, report: Report):
    import torch
    if env['mmcv'] is None:
        report.add('ops', 'mmcv', 'FAILED', env.get('mmcv_error', 'mmcv does not import'))
        return
    cuda = bool(env['gpus'] and env['mmcv_cuda'])
    why = 'no GPU visible' if not env['gpus'] else 'mmcv has no CUDA ops'
    for name, (inputs, cpu_fn, cuda_fn) in _op_cases().items():
        def one(name=name, inputs=inputs, cpu_fn=cpu_fn, cuda_fn=cuda_fn):
            expected = cpu_fn(*inputs)
            if not cuda:
                return 'skipped', f'CPU reference ran; CUDA side skipped: {why}', {}
            got = [t.cpu() for t in cuda_fn(*[t.cuda() for t in inputs])]
            tol = TOLERANCES[name]
            if isinstance(tol, str):
                same = all(torch.equal(a, b) for a, b in zip(got, expected))
                return ('ok' if same else 'FAILED'), f'{tol}: {same}', {}
            errs, ok = [], True
            for a, b in zip(got, expected):
                close, err = _close(a, b, tol)
                ok, errs = ok and close, errs + [err]
            detail = (f"max |CUDA - CPU| {', '.join(f'{e:.1e}' for e in errs)} (forward, grad); "
                      f"tolerance atol {tol['atol']}, rtol {tol['rtol']}")
            return ('ok' if ok else 'FAILED'), detail, dict(max_abs_err=errs)
        _guard(report, 'ops', name, one)


# ----------------------------------------------------------------------------------
# train: scaled-down configs, AMP fp16 / bf16

def configs() -> list:
    """The method configs shipped with protune_mm (configs/det, configs/seg)."""
    return [path for sub in ('det', 'seg')
            for path in sorted(glob.glob(osp.join(shipped('configs', sub), '*.py')))]


def train_one(path: str, data: dict, work_dir: str, dtype: str, iters: int):
    """Train one scaled-down config with AMP in ``dtype`` ('float16', 'bfloat16'; None:
    float32 without AMP, which also runs on CPU) and check what training changed."""
    import torch
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    from protune_mm import find_wrappers
    from protune_mm.checkpoint import frozen_keys
    cfg = shrink_for_training(load_config(path), data, work_dir, iters)
    if dtype is not None:
        ow = cfg.optim_wrapper
        ow.type = 'AmpOptimWrapper'
        ow.dtype = dtype
        # fp16: a small initial loss scale, so the few steps are not all skipped as overflows.
        ow.loss_scale = dict(init_scale=2.0**9) if dtype == 'float16' else 'dynamic'

    class Watch(Hook):
        priority = 'LOWEST'

        def __init__(self):
            self.losses, self.before = [], None

        def before_train(self, runner):
            self.before = {k: v.detach().clone() for k, v in runner.model.state_dict().items()}

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            self.losses.append({k: float(torch.as_tensor(v).detach())
                                for k, v in (outputs or {}).items() if k.startswith('loss')})

    runner = Runner.from_cfg(cfg)
    watch = Watch()
    runner.register_hook(watch)
    runner.train()
    after = runner.model.state_dict()
    # The recorded frozen set; the prompts: the methods' other tensors.
    frozen = frozen_keys(runner.model)
    prompts = [f'{name}.{k}' for name, method in find_wrappers(runner.model)
               for k in method.state_dict() if k not in method.frozen_keys]
    changed = [k for k in frozen if not torch.equal(watch.before[k], after[k])]
    moved = sum(not torch.equal(watch.before[k], after[k]) for k in prompts)
    finite = bool(watch.losses) and all(math.isfinite(v) for row in watch.losses
                                        for v in row.values())
    wants_prompts = cfg.model.backbone.type != 'protune_mm.Frozen'
    problems = []
    if not finite:
        problems.append('non-finite loss')
    if not frozen or changed:
        problems.append(f'{len(changed)} frozen tensors changed: {changed[:3]}'
                        if frozen else 'no frozen tensors found')
    if wants_prompts and not moved:
        problems.append('the prompts did not move')
    last = watch.losses[-1].get('loss') if watch.losses else None
    detail = (f'{len(watch.losses)} iters, last loss {last:.4g}, ' if last is not None else '') + \
        f'{len(frozen)} frozen tensors bit-identical, {moved}/{len(prompts)} prompt tensors moved'
    data = dict(losses=watch.losses, frozen_tensors=len(frozen), frozen_changed=changed,
                prompt_tensors=len(prompts), prompts_moved=moved)
    del runner
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return ('FAILED', '; '.join(problems) + ' | ' + detail, data) if problems else \
        ('ok', detail, data)


def check_train(env: dict, report: Report, work_dir: str, iters: int):
    dtypes = [('fp16', 'float16')] + ([('bf16', 'bfloat16')] if env['bf16'] else [])
    data = synthetic_data(osp.join(work_dir, 'data')) if env['gpus'] else None
    for path in configs():
        name = osp.splitext(osp.basename(path))[0]
        det = osp.basename(osp.dirname(path)) == 'det'
        for label, dtype in dtypes:
            if not env['gpus']:
                report.add('train', f'{name} {label}', 'skipped', 'no GPU visible')
            elif det and not env['mmcv_cuda']:
                report.add('train', f'{name} {label}', 'skipped',
                           'needs mmcv CUDA ops (RoIAlign / nms / focal loss)')
            else:
                _guard(report, 'train', f'{name} {label}', train_one, path, data,
                       osp.join(work_dir, 'train', f'{name}_{label}'), dtype, iters)
        if env['gpus'] and not env['bf16']:
            report.add('train', f'{name} bf16', 'skipped', 'this GPU has no bf16')


# ----------------------------------------------------------------------------------
# ddp: tools/dist_train.sh, one process per GPU, NCCL

def ddp_one(name: str, procs: int, data: dict, work_dir: str, iters: int,
            backend: str = 'nccl'):
    """tools/dist_train.sh on the scaled-down config: ``procs`` processes (one per GPU;
    gloo on CPU runs the same path without a GPU)."""
    config = shipped('configs', 'seg' if 'upernet' in name else 'det', name + '.py')
    cfg = shrink_for_training(load_config(config), data, work_dir, iters)
    cfg.env_cfg.dist_cfg = dict(backend=backend)
    path = osp.join(work_dir, name + '_ddp.py')
    os.makedirs(work_dir, exist_ok=True)
    cfg.dump(path)
    cmd = ['bash', shipped('tools', 'dist_train.sh'), path, str(procs),
           '--work-dir', work_dir]
    # dist_train.sh runs `python`: this one, also when its venv is not activated.
    env_vars = dict(os.environ, PORT=str(29500 + os.getpid() % 1000),
                    PATH=osp.dirname(sys.executable) + os.pathsep + os.environ.get('PATH', ''))
    proc = subprocess.run(cmd, env=env_vars, capture_output=True, text=True,
                          timeout=300)
    with open(osp.join(work_dir, 'dist_train.log'), 'w') as f:
        f.write(proc.stdout + proc.stderr)
    if proc.returncode:
        return 'FAILED', f'{last_line(proc)} (log {work_dir})', {}
    losses = []
    for scalars in glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')):
        losses += [json.loads(line)['loss'] for line in open(scalars) if '"loss"' in line]
    finite = bool(losses) and all(math.isfinite(v) for v in losses)
    return ('ok' if finite else 'FAILED'), \
        f'{procs} processes ({backend}), {len(losses)} logged losses, finite: {finite}', \
        dict(losses=losses)


def check_ddp(env: dict, report: Report, work_dir: str, iters: int):
    data = synthetic_data(osp.join(work_dir, 'data')) if env['gpus'] else None
    for name in ('mask_rcnn_protune_r50', 'upernet_protune_r50_ade20k'):
        if not env['gpus']:
            report.add('ddp', name, 'skipped', 'no GPU visible')
        elif not env['nccl']:
            report.add('ddp', name, 'FAILED', 'torch has no NCCL')
        elif 'mask_rcnn' in name and not env['mmcv_cuda']:
            report.add('ddp', name, 'skipped', 'needs mmcv CUDA ops')
        else:
            _guard(report, 'ddp', name, ddp_one, name, len(env['gpus']), data,
                   osp.join(work_dir, 'ddp', name), iters)


# ----------------------------------------------------------------------------------
# bench: tools/benchmark.py --device cuda

def bench_one(config: str, size: str, batch: int, methods: tuple, out: str):
    cmd = [sys.executable, shipped('tools', 'benchmark.py'), config, '--device', 'cuda',
           '--methods', *methods, '--batch', str(batch), '--size', size, '--warmup', '2',
           '--steps', '3', '--infer-steps', '3', '--out', out]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=400)
    if proc.returncode:
        return 'FAILED', last_line(proc), {}
    with open(out) as f:
        result = json.load(f)
    print(result['table'], flush=True)
    return 'ok', f'table in {out}', dict(median=result['median'])


def check_bench(env: dict, report: Report, work_dir: str):
    for name, config, size, batch, methods in BENCHMARKS:
        label = f'{name} {size} batch {batch}'
        if not env['gpus']:
            report.add('bench', label, 'skipped', 'no GPU visible')
        elif ('mmdet' in config or '::det/' in config) and not env['mmcv_cuda']:
            report.add('bench', label, 'skipped', 'needs mmcv CUDA ops')
        else:
            out = osp.join(work_dir, 'bench', name.replace(' ', '_').lower() + '.json')
            _guard(report, 'bench', label, bench_one, config, size, batch, methods, out)


# ----------------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', help='JSON of the results (default: WORK_DIR/cuda_check.json)')
    parser.add_argument('--work-dir', help='scratch folder (default: a temporary one)')
    parser.add_argument('--skip', nargs='+', choices=CHECKS, default=[])
    parser.add_argument('--iters', type=int, default=6, help='training iterations per config')
    args = parser.parse_args(argv)
    work_dir = args.work_dir or tempfile.mkdtemp(prefix='cuda_check_')
    out = args.out or osp.join(work_dir, 'cuda_check.json')

    env = environment()
    print(describe(env), flush=True)
    report = Report(out, env)
    checks = dict(ops=lambda: check_ops(env, report),
                  train=lambda: check_train(env, report, work_dir, args.iters),
                  ddp=lambda: check_ddp(env, report, work_dir, args.iters),
                  bench=lambda: check_bench(env, report, work_dir))
    for name in CHECKS:
        if name not in args.skip:
            checks[name]()

    code = report.exit_code()
    print('\n' + describe(env))
    print(report.table())
    verdict = {EXIT_OK: 'every check passed', EXIT_FAILED: 'FAILED',
               EXIT_SKIPPED: 'nothing failed, but checks were SKIPPED (see above)'}[code]
    print(f'\n{verdict}; {time.time() - T0:.0f} s; results in {out}; exit code {code}')
    report.save(finished=True)
    return code


if __name__ == '__main__':
    sys.exit(main())
