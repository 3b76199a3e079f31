"""Check every method on the backbones of stock (or given) configs.

    python tools/check_backbones.py [CONFIG ...] [--methods frozen protune vpt]
        [--size 64] [--max-size 512] [--timeout 300] [--threads 1] [--jobs N]
        [--out FILE]

Without CONFIG: every stock config of the installed mmdet and mmseg (their
``.mim/configs``, ``_base_`` folders left out). A CONFIG is a file or
``mmdet::path/to/config.py``. For each config ``model.backbone`` is taken (configs
that do not load or have none are counted apart, with the reason), stripped of
what would load weights (``init_cfg``, ``pretrained``, at any depth; SyncBN becomes
BN, the same computation in the frozen eval mode on one process), and each
*unique* backbone (that stripped config in its registry scope) is checked once:

- the bare backbone is built and run at ``--size``; when it does not run there
  (too small for its downsampling, window or crop), at twice the size, up to
  ``--max-size``; the size that ran is used for every method and recorded;
- each method (``protune_mm.Frozen``, ``ProTune`` and ``VPT`` with their
  defaults) goes through ``protune_mm.check.check_method``: identity at init,
  gradients on every prompt, frozen tensors unchanged after optimizer steps.

Unique backbones are checked by ``--jobs`` worker processes side by side (one
torch thread each by default). The result applies to every config using that
backbone. Printed: a progress line
per unique backbone, a table by backbone type (configs, share passing per
method), every failing config with the reason; written: the JSON (``--out``).
Exit code 1 if a checked backbone failed a method, else 0.
"""
import argparse
import copy
import gc
import glob
import json
import os
import os.path as osp
import queue
import signal
import sys
import threading
import time
import warnings
from collections import OrderedDict
from contextlib import contextmanager
from typing import Callable, Dict, List, Optional, Tuple

#: --methods name -> registered type.
METHODS = OrderedDict(frozen='protune_mm.Frozen', protune='protune_mm.ProTune',
                      vpt='protune_mm.VPT')
#: packages whose stock configs make the default sweep.
PACKAGES = ('mmdet', 'mmseg')
#: config keys that load weights; removed at any depth of the backbone config.
WEIGHT_KEYS = ('init_cfg', 'pretrained')
# Config statuses (one per config; 'checked' configs have method results).
CHECKED, NOT_BUILT, NO_BACKBONE, NOT_LOADED = ('checked', 'not built', 'no backbone',
                                               'not loaded')
#: how each status is said in the summary.
SAID = {NOT_BUILT: 'whose bare backbone does not build or run',
        NO_BACKBONE: 'without model.backbone', NOT_LOADED: 'that do not load'}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Check Frozen / ProTune / VPT on the backbones of stock or given '
        'configs (identity at init, gradients, frozen tensors unchanged)')
    parser.add_argument('configs', nargs='*', metavar='CONFIG',
                        help='config files or pkg::path; default: every stock config '
                        f'of the installed {" and ".join(PACKAGES)}')
    parser.add_argument('--methods', nargs='+', default=list(METHODS),
                        choices=list(METHODS), help='methods to check')
    parser.add_argument('--size', type=int, default=64,
                        help='side of the square check input (batch 1)')
    parser.add_argument('--max-size', type=int, default=512,
                        help='largest side tried (doubling from --size) for a backbone '
                        'that does not run at --size')
    parser.add_argument('--timeout', type=float, default=300,
                        help='CPU seconds per unique backbone (all methods; CPU time, '
                        'so a busy machine does not time checks out); 0: none')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch CPU threads; 1 by default: on a shared 2-core '
                        'machine two threads took 6x the CPU time of one (measured, '
                        'threads spinning while the other core was busy)')
    parser.add_argument('--jobs', type=int, default=min(4, os.cpu_count() or 1),
                        help='worker processes checking backbones side by side '
                        '(default: the CPU count, at most 4)')
    parser.add_argument('--out', default='work_dirs/check_backbones.json',
                        help='JSON results (written atomically)')
    args = parser.parse_args(argv)
    if args.size < 1 or args.max_size < args.size:
        parser.error(f'--size must be >= 1 and --max-size >= --size, got --size '
                     f'{args.size} --max-size {args.max_size}')
    if args.jobs < 1:
        parser.error(f'--jobs must be >= 1, got {args.jobs}')
    if args.threads < 1:
        parser.error(f'--threads must be >= 1, got {args.threads}')
    if args.timeout < 0:
        parser.error(f'--timeout must be >= 0 (0: none), got {args.timeout}')
    return args


# ----------------------------------------------------------------------------------
# configs and their backbones

def _mim_configs(pkg: str) -> str:
    """The stock config folder of an installed OpenMMLab package."""
    import importlib
    return osp.join(osp.dirname(importlib.import_module(pkg).__file__), '.mim', 'configs')


def stock_configs(packages=PACKAGES) -> List[str]:
    """``pkg::path`` of every stock config of ``packages`` (``_base_`` left out)."""
    names = []
    for pkg in packages:
        root = _mim_configs(pkg)
        for path in sorted(glob.glob(osp.join(root, '**', '*.py'), recursive=True)):
            rel = osp.relpath(path, root)
            if '_base_' not in rel.split(osp.sep):
                names.append(f'{pkg}::{rel}')
    return names


def _config_file(name: str) -> str:
    if '::' not in name:
        return name
    pkg, rel = name.split('::', 1)
    return osp.join(_mim_configs(pkg), rel)


def _plain(value):
    """Config values as plain containers (ConfigDict -> dict); tuples stay tuples,
    since backbones assert on them (CGNet, MobileNetV3)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def strip_weights(cfg):
    """A copy of a backbone config without what loads weights (``init_cfg``,
    ``pretrained`` at any depth) and with SyncBN as BN."""
    if isinstance(cfg, dict):
        cfg = {k: strip_weights(v) for k, v in cfg.items() if k not in WEIGHT_KEYS}
        if cfg.get('type') == 'SyncBN':
            cfg['type'] = 'BN'
        return cfg
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(strip_weights(v) for v in cfg)
    return cfg


def _reason(e: BaseException, limit: int = 300) -> str:
    lines = str(e).strip().splitlines()
    text = f'{type(e).__name__}: {lines[0] if lines else ""}'.rstrip(': ')
    return text if len(text) <= limit else text[:limit - 3] + '...'


def read_backbone(name: str) -> Tuple[str, Optional[str], Optional[dict]]:
    """(status, reason or scope, stripped backbone config) of one config."""
    from mmengine.config import Config
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            cfg = Config.fromfile(_config_file(name))
    except Exception as e:  # a stock config may need a package or project not here
        return NOT_LOADED, _reason(e), None
    model = cfg.get('model')
    backbone = model.get('backbone') if isinstance(model, dict) else None
    if not isinstance(backbone, dict) or 'type' not in backbone:
        return NO_BACKBONE, ('no model' if not isinstance(model, dict) else
                             f"no model.backbone (model type {model.get('type')!r})"), None
    scope = cfg.get('default_scope') or (name.split('::')[0] if '::' in name else None)
    return CHECKED, scope, strip_weights(_plain(backbone))


def backbone_type(scope: Optional[str], cfg: dict) -> str:
    """The registry name of a backbone with its scope: 'mmdet.ResNet',
    'mmpretrain.ConvNeXt' (a scope written in the type wins)."""
    t = cfg['type']
    if not isinstance(t, str):
        return getattr(t, '__qualname__', repr(t))
    return t if '.' in t or not scope else f'{scope}.{t}'


# ----------------------------------------------------------------------------------
# checking one unique backbone

@contextmanager
def _time_limit(seconds: float):
    """Raise TimeoutError in the main thread once the process has used ``seconds``
    of CPU time (0: no limit)."""
    if not seconds or not hasattr(signal, 'SIGPROF'):
        yield
        return

    def expire(signum, frame):
        raise TimeoutError(f'over the --timeout of {seconds:g} CPU seconds')

    previous = signal.signal(signal.SIGPROF, expire)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def _input_channels(cfg: dict) -> int:
    """The image channels a backbone takes: its ``in_channels`` (6 for mmseg's
    change-detection Swin), else 3."""
    channels = cfg.get('in_channels')
    return channels if isinstance(channels, int) and channels > 0 else 3


def _sizes(cfg: dict, size: int, max_size: int) -> List[int]:
    """Input sides to try: ``size`` doubled up to ``max_size``, then the backbone's
    own square ``img_size`` (BEiT's relative position tables fit only that one)."""
    sizes = [size]
    while sizes[-1] * 2 <= max_size:
        sizes.append(sizes[-1] * 2)
    img_size = cfg.get('img_size')
    if isinstance(img_size, (list, tuple)) and len(set(img_size)) == 1:
        img_size = img_size[0]
    if isinstance(img_size, int) and img_size not in sizes:
        sizes.append(img_size)
    return sizes


def _runs_at(backbone, channels: int, size: int) -> Optional[str]:
    """None if the bare backbone runs on a (1, channels, size, size) input, else why
    not."""
    import torch
    try:
        with torch.no_grad():
            backbone(torch.randn(1, channels, size, size))
    except TimeoutError:
        raise
    except Exception as e:
        return _reason(e)
    return None


def check_backbone(scope: Optional[str], cfg: dict, methods: List[str], size: int,
                   max_size: int, report: Callable) -> None:
    """Build and run the bare backbone (doubling the input side from ``size`` to
    ``max_size`` until it runs), then check each method at that size. Results go
    to ``report(kind, *payload)`` as they come: ``('error', why)``, ``('size',
    px, why_not_smaller)``, ``('start', method)``, ``('method', method, entry)``."""
    import torch
    from mmengine.registry import MODELS, DefaultScope

    from protune_mm.check import check_method
    with DefaultScope.overwrite_default_scope(scope), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.manual_seed(0)
        try:
            bare = MODELS.build(copy.deepcopy(cfg))
        except TimeoutError:
            raise
        except Exception as e:
            report('error', f'does not build: {_reason(e)}')
            return
        bare.eval()
        channels = _input_channels(cfg)
        sizes = _sizes(cfg, size, max_size)
        for tried in sizes:
            why = _runs_at(bare, channels, tried)
            if tried == size:
                first = why
            if why is None:
                break
        else:
            report('error', f'does not run at {", ".join(map(str, sizes))} px: {why}')
            return
        report('size', tried, None if first is None else f'at {size} px: {first}')
        for name in methods:
            report('start', name)
            start = time.perf_counter()
            try:
                # One bare build for all methods: builds are most of the time.
                outcome = check_method(dict(type=METHODS[name], backbone=cfg),
                                       (1, channels, tried, tried), bare=bare)
                entry = dict(ok=outcome.ok, failures=outcome.failures,
                             trainable=outcome.trainable)
            except TimeoutError:
                raise
            except Exception as e:  # a refusal (no adapter, ...) is a result
                entry = dict(ok=False, failures=[_reason(e)], trainable=None)
            entry['seconds'] = round(time.perf_counter() - start, 2)
            report('method', name, entry)
            gc.collect()


def _worker(conn, threads: int, timeout: float) -> None:
    """Check the backbones sent over ``conn`` one by one, reporting back as it goes
    (a separate process: a backbone that crashes it, e.g. a segfault in a compiled
    op, cannot end the sweep)."""
    import torch
    torch.set_num_threads(threads)
    while True:
        job = conn.recv()
        if job is None:
            return
        cpu = time.process_time()
        try:
            with _time_limit(timeout), _quiet_log():
                check_backbone(*job, report=lambda *msg: conn.send(msg))
        except TimeoutError as e:
            conn.send(('timeout', _reason(e)))
        conn.send(('done', round(time.process_time() - cpu, 2)))


class _Checker:
    """The parent's side of :func:`_worker`: restarts it after a crash."""

    def __init__(self, threads: int, timeout: float):
        import multiprocessing
        # fork: the worker starts with everything the parent imported (and the
        # backbones a caller registered), in no time.
        self.ctx = multiprocessing.get_context('fork')
        self.threads, self.timeout = threads, timeout
        self.proc = self.conn = None

    def _start(self):
        self.conn, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=_worker, daemon=True,
                                     args=(child, self.threads, self.timeout))
        self.proc.start()
        child.close()  # so that a dead worker reads as EOF here

    def close(self):
        if self.proc is not None and self.proc.is_alive():
            self.conn.send(None)
            self.proc.join()

    def _crash(self) -> str:
        self.proc.join()
        code = self.proc.exitcode
        self.proc = None
        try:
            what = signal.Signals(-code).name if code < 0 else f'exit code {code}'
        except ValueError:
            what = f'exit code {code}'
        return f'the check process crashed ({what})'

    def check(self, entry: dict, methods: List[str], size: int, max_size: int) -> None:
        """Fill ``entry`` (size, error, methods); a crash fails what was running, and
        the methods left run in a new worker at the size found."""
        entry.update(size=None, error=None, methods={})
        todo = list(methods)
        while todo:
            if self.proc is None:
                self._start()
            self.conn.send((entry['scope'], entry['config'], todo, size, max_size))
            running = None
            while True:
                try:
                    kind, *payload = self.conn.recv()
                except EOFError:
                    why = self._crash()
                    if running is None:  # building or running the bare backbone
                        entry['error'] = f'{why} building or running it'
                        return
                    entry['methods'][running] = dict(ok=False, failures=[why],
                                                     trainable=None)
                    break
                if kind == 'error':
                    entry['error'] = payload[0]
                elif kind == 'size':
                    entry['size'] = size = max_size = payload[0]
                    if payload[1] and 'size_reason' not in entry:
                        entry['size_reason'] = payload[1]
                elif kind == 'start':
                    running = payload[0]
                elif kind == 'method':
                    entry['methods'][payload[0]] = payload[1]
                elif kind == 'timeout':  # the methods not done fail with the reason
                    for m in methods:
                        entry['methods'].setdefault(
                            m, dict(ok=False, failures=[payload[0]], trainable=None))
                elif kind == 'done':
                    entry['cpu_seconds'] = entry.get('cpu_seconds', 0) + payload[0]
                    break
            if entry['error']:
                return
            todo = [m for m in methods if m not in entry['methods']]
        # Methods in the order asked.
        entry['methods'] = {m: entry['methods'][m] for m in methods}


# ----------------------------------------------------------------------------------
# the sweep

@contextmanager
def _quiet_log():
    """The methods log skipped prompts at INFO: one line per build would bury the
    progress lines."""
    import logging

    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _key(scope, cfg) -> str:
    return json.dumps([scope, cfg], sort_keys=True, default=repr)


def _clock(seconds: float) -> str:
    return f'{int(seconds // 60)}m{seconds % 60:04.1f}s'


def _log(line: str) -> None:
    print(line, flush=True)  # progress shows as it happens when piped to a file


def sweep(names: List[str], methods: List[str], size: int = 64, max_size: int = 512,
          timeout: float = 300, threads: int = 1, log=_log, jobs: int = 1) -> dict:
    """Check ``methods`` on the backbones of the configs ``names``, in ``jobs``
    worker processes; the results as written to the JSON."""
    start = time.perf_counter()
    configs: Dict[str, dict] = OrderedDict()
    unique: Dict[str, dict] = OrderedDict()
    for name in names:
        status, detail, backbone = read_backbone(name)
        if status != CHECKED:
            configs[name] = dict(status=status, reason=detail)
            continue
        key = _key(detail, backbone)
        if key not in unique:
            unique[key] = dict(id=len(unique), type=backbone_type(detail, backbone),
                               scope=detail, config=backbone, configs=[])
        unique[key]['configs'].append(name)
        configs[name] = dict(status=CHECKED, backbone=unique[key]['id'])
    log(f'check_backbones: {len(names)} configs read in '
        f'{_clock(time.perf_counter() - start)}; {len(unique)} unique backbones, '
        f'methods {", ".join(methods)}, input {size} px (up to {max_size})')

    # One worker process per job, each fed by a parent thread (which only waits on
    # its pipe); results land in the entries, so the order of the JSON is fixed.
    entries = queue.Queue()
    for entry in unique.values():
        entries.put(entry)
    done, lock = [0], threading.Lock()

    def run_jobs():
        checker = _Checker(threads, timeout)
        try:
            while True:
                try:
                    entry = entries.get_nowait()
                except queue.Empty:
                    return
                t0 = time.perf_counter()
                checker.check(entry, methods, size, max_size)
                entry['seconds'] = round(time.perf_counter() - t0, 2)
                if entry['error']:
                    what = entry['error']
                else:
                    what = ', '.join(f"{m} {'ok' if r['ok'] else 'FAILED'}"
                                     for m, r in entry['methods'].items())
                    what = f"{entry['size']} px: {what}"
                with lock:
                    done[0] += 1
                    log(f"[{done[0]}/{len(unique)}] {entry['type']} "
                        f"({len(entry['configs'])} configs) {what}  "
                        f"{entry['seconds']:.1f} s, elapsed "
                        f'{_clock(time.perf_counter() - start)}')
        finally:
            checker.close()

    workers = [threading.Thread(target=run_jobs, daemon=True)
               for _ in range(max(1, min(jobs, len(unique))))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    backbones = list(unique.values())
    for name, c in configs.items():
        if c['status'] == CHECKED and backbones[c['backbone']]['error']:
            c.update(status=NOT_BUILT, reason=backbones[c['backbone']]['error'])
    return dict(methods=methods, size=size, max_size=max_size, timeout=timeout,
                jobs=jobs, seconds=round(time.perf_counter() - start, 1),
                cpu_seconds=round(sum(b.get('cpu_seconds', 0) for b in backbones), 1),
                summary=summarise(configs, backbones, methods),
                configs=configs, backbones=backbones)


def summarise(configs: dict, backbones: list, methods: List[str]) -> dict:
    checked = [c for c in configs.values() if c['status'] == CHECKED]
    counts = OrderedDict((s, sum(c['status'] == s for c in configs.values()))
                         for s in (CHECKED, NOT_BUILT, NO_BACKBONE, NOT_LOADED))
    passing = {m: sum(backbones[c['backbone']]['methods'][m]['ok'] for c in checked)
               for m in methods}
    by_type = OrderedDict()
    for c in sorted(configs.values(), key=lambda c: c.get('backbone', -1)):
        if 'backbone' not in c:
            continue
        b = backbones[c['backbone']]
        row = by_type.setdefault(b['type'], dict(configs=0, backbones=set(),
                                                 checked=0, passing=dict.fromkeys(methods, 0)))
        row['configs'] += 1
        row['backbones'].add(b['id'])
        if c['status'] == CHECKED:
            row['checked'] += 1
            for m in methods:
                row['passing'][m] += b['methods'][m]['ok']
    for row in by_type.values():
        row['backbones'] = len(row['backbones'])
    by_type = OrderedDict(sorted(by_type.items(), key=lambda kv: (-kv[1]['configs'], kv[0])))
    return dict(configs=len(configs), **{s.replace(' ', '_'): n for s, n in counts.items()},
                passing=passing,
                share={m: round(passing[m] / len(checked), 4) if checked else None
                       for m in methods},
                by_type=by_type)


# ----------------------------------------------------------------------------------
# printing

def _share(n: int, total: int) -> str:
    return f'{100 * n / total:.0f}%' if total else '-'


def format_table(result: dict) -> str:
    s, methods = result['summary'], result['methods']
    width = max([len('backbone type')] + [len(t) for t in s['by_type']]) + 2
    head = f"{'backbone type':<{width}}{'configs':>8}{'unique':>8}{'checked':>9}" + \
        ''.join(f'{m:>9}' for m in methods)
    lines = [head, '-' * len(head)]
    rows = list(s['by_type'].items()) + [('all', dict(
        configs=sum(r['configs'] for r in s['by_type'].values()),
        backbones=len(result['backbones']), checked=s['checked'],
        passing=s['passing']))]
    for t, r in rows:
        if t == 'all':
            lines.append('-' * len(head))
        lines.append(f"{t:<{width}}{r['configs']:>8}{r['backbones']:>8}{r['checked']:>9}"
                     + ''.join(f"{_share(r['passing'][m], r['checked']):>9}"
                               for m in methods))
    return '\n'.join(lines)


def failing_lines(result: dict) -> List[str]:
    """One line per checked config that fails a method: the methods and why."""
    lines = []
    backbones = result['backbones']
    for name, c in result['configs'].items():
        if c['status'] != CHECKED:
            continue
        b = backbones[c['backbone']]
        bad = [(m, r) for m, r in b['methods'].items() if not r['ok']]
        if bad:
            why = '; '.join(f"{m}: {' | '.join(r['failures'])}" for m, r in bad)
            lines.append(f'{name} [{b["type"]}]: {why}')
    return lines


def skipped_lines(result: dict) -> List[str]:
    lines = []
    for status in (NOT_BUILT, NOT_LOADED, NO_BACKBONE):
        names = [(n, c['reason']) for n, c in result['configs'].items()
                 if c['status'] == status]
        if not names:
            continue
        lines.append(f'{len(names)} configs {SAID[status]}:')
        if status == NO_BACKBONE:  # the reason is the model type: count them
            reasons = OrderedDict()
            for _, reason in names:
                reasons[reason] = reasons.get(reason, 0) + 1
            lines += [f'  {n} x {reason}' for reason, n in reasons.items()]
        else:
            lines += [f'  {n}: {reason}' for n, reason in names]
    return lines


def main(argv=None) -> int:
    args = parse_args(argv)
    import protune_mm  # noqa: F401  (registers the methods and adapters)
    from protune_mm.fileio import write_json
    names = args.configs or stock_configs()
    result = sweep(names, args.methods, args.size, args.max_size, args.timeout,
                   args.threads, jobs=args.jobs)
    result['threads'] = args.threads
    result['command'] = ' '.join(['tools/check_backbones.py'] + list(
        argv if argv is not None else sys.argv[1:]))
    result['versions'] = _versions()
    write_json(result, args.out)
    print()
    print(format_table(result))
    s = result['summary']
    print(f"\n{s['configs']} configs: {s['checked']} checked, " + ', '.join(
        f"{s[status.replace(' ', '_')]} {said}" for status, said in SAID.items()) +
        f"; {len(result['backbones'])} unique backbones in {_clock(result['seconds'])} "
        f"({_clock(result['cpu_seconds'])} of CPU time, {args.jobs} jobs)")
    print('passing (of checked): ' + ', '.join(
        f"{m} {s['passing'][m]}/{s['checked']} ({_share(s['passing'][m], s['checked'])})"
        for m in args.methods))
    failing = failing_lines(result)
    if failing:
        print(f'\nFailing configs ({len(failing)}):')
        print('\n'.join(failing))
    skipped = skipped_lines(result)
    if skipped:
        print('\nNot checked:')
        print('\n'.join(skipped))
    print(f'\nResults: {args.out}')
    return 1 if failing else 0


def _versions() -> dict:
    import importlib
    versions = {}
    for pkg in ('torch', 'mmcv', 'mmengine', 'mmdet', 'mmseg', 'mmpretrain', 'timm',
                'protune_mm'):
        try:
            versions[pkg] = importlib.import_module(pkg).__version__
        except Exception:  # an optional package: recorded as absent
            versions[pkg] = None
    return versions
