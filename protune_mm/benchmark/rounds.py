"""The benchmark's rounds: each variant measured in its own fresh process (the
benchmark command with ``--worker``), all variants once per round, the order
reversed every other round."""
import json
import subprocess
import sys
import time

from .report import MEASURES, fmt

RESULT_TAG = 'BENCHMARK_RESULT '


def _worker_cmd(args, spec: str) -> list:
    # The worker is the command's module, run by name so it works from any folder.
    cmd = [sys.executable, '-m', 'protune_mm.cli.benchmark', args.config,
           '--worker', spec, '--device', args.device, '--batch', str(args.batch), '--size',
           str(args.size), '--warmup', str(args.warmup), '--steps', str(args.steps),
           '--infer-steps', str(args.infer_steps), '--threads', str(args.threads)]
    if args.no_timing:
        cmd.append('--no-timing')
    return cmd


def run_all(args) -> list:
    """Every round of every variant in ``args.methods``: each run's measures."""
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
                  + ', '.join(f'{k}={fmt(k, result[k])}' for k, _, _ in MEASURES
                              if k in result) + f' ({time.time() - t0:.0f}s)',
                  flush=True)
    return runs
