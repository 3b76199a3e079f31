"""What a GPU machine has, for tools/cuda_check.py: torch and its CUDA, the GPUs,
bf16, NCCL, and whether mmcv has CUDA ops."""
import collections
import json
import subprocess
import sys


def environment() -> dict:
    """mmcv's ``collect_env`` (mmengine's versions, compilers and GPU names, plus mmcv
    and the CUDA its ops were built with) under ``versions``, and the facts the checks
    decide on: torch's CUDA, each GPU's capability and memory, bf16, NCCL, mmcv."""
    import torch
    env = dict(torch_cuda=torch.version.cuda, gpus=[], bf16=False, nccl=False, mmcv=None,
               mmcv_cuda=None)
    # In a child process: an mmcv build that does not fit its torch can crash in its
    # compiled ops (seen on a GPU machine: mmcv 2.1.0's CPU ops built against torch 2.11
    # segfault in get_compiler_version), and the check must still run and report.
    code = ('import json, mmcv.ops; from mmcv.utils import collect_env; '
            'print(json.dumps(dict(collect_env()), default=str))')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    if proc.returncode == 0:
        env['versions'] = json.loads(proc.stdout.strip().splitlines()[-1])
        env['mmcv'] = env['versions']['MMCV']
        version = env['versions']['MMCV CUDA Compiler']
        env['mmcv_cuda'] = None if version == 'not available' else version
    else:  # reported; without a known CUDA build the checks needing CUDA ops are skipped
        from mmengine.utils.dl_utils import collect_env
        env['versions'] = dict(collect_env())
        env['mmcv_error'] = f'mmcv collect_env failed, {last_line(proc)}'
        try:
            import mmcv.ops  # noqa: F401
            env['mmcv'] = mmcv.__version__
        except Exception:  # noqa: BLE001 - mmcv_error says why
            pass
    env['versions'].pop('numpy_random_seed', None)  # a random draw, not a machine fact
    if torch.version.cuda and torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            env['gpus'].append(dict(name=p.name, capability=f'{p.major}.{p.minor}',
                                    memory_gib=round(p.total_memory / 2**30, 1)))
        env['bf16'] = bool(torch.cuda.is_bf16_supported())
        env['nccl'] = bool(torch.distributed.is_nccl_available())
    return env


def describe(env: dict) -> str:
    gpus = env['gpus']
    if gpus:
        names = collections.Counter(
            f"{g['name']} (sm_{g['capability'].replace('.', '')}, {g['memory_gib']} GiB)"
            for g in gpus)
        gpu_text = f'{len(gpus)} GPU(s): ' + ', '.join(f'{n} x {k}' for k, n in names.items())
    elif env['torch_cuda']:
        gpu_text = 'NO GPU visible'
    else:
        gpu_text = 'NO GPU: this torch has no CUDA'
    if env['mmcv'] is None or env.get('mmcv_error'):
        ops = f"mmcv {env['mmcv'] or 'does not import'} ({env.get('mmcv_error')})"
    elif env['mmcv_cuda']:
        ops = f"mmcv {env['mmcv']} with CUDA ops (built with CUDA {env['mmcv_cuda']})"
    else:
        ops = f"mmcv {env['mmcv']} WITHOUT CUDA ops (CPU build)"
    torch = f"torch {env['versions']['PyTorch']} (CUDA {env['torch_cuda'] or 'none'})"
    return f'cuda_check: {torch} | {gpu_text} | {ops}'


def last_line(proc) -> str:
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ['']
    return f'exit {proc.returncode}: {tail[0][:200]}'
