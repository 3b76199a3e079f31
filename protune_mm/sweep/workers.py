"""The sweep: configs read here, each unique backbone checked in a worker process,
``jobs`` of them side by side. A backbone that crashes its worker (a segfault in
a compiled op) or runs over its CPU time fails; the sweep goes on."""
import json
import queue
import signal
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from typing import Dict, List

from .backbone import check_backbone, time_limit
from .configs import CHECKED, NOT_BUILT, backbone_type, read_backbone, reason
from .summary import clock, summarise


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
            with time_limit(timeout), _quiet_log():
                check_backbone(*job, report=lambda *msg: conn.send(msg))
        except TimeoutError as e:
            conn.send(('timeout', reason(e)))
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


def _key(scope, cfg) -> str:
    return json.dumps([scope, cfg], sort_keys=True, default=repr)


def _log(line: str) -> None:
    print(line, flush=True)  # progress shows as it happens when piped to a file


def read_configs(names: List[str]):
    """(configs, unique backbones): each config's status (and its backbone's id),
    and each unique backbone (stripped config in its scope) with its configs."""
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
    return configs, list(unique.values())


def _outcome(entry: dict) -> str:
    if entry['error']:
        return entry['error']
    what = ', '.join(f"{m} {'ok' if r['ok'] else 'FAILED'}"
                     for m, r in entry['methods'].items())
    return f"{entry['size']} px: {what}"


def sweep(names: List[str], methods: List[str], size: int = 64, max_size: int = 512,
          timeout: float = 300, threads: int = 1, log=_log, jobs: int = 1) -> dict:
    """Check ``methods`` on the backbones of the configs ``names``, in ``jobs``
    worker processes; the results as written to the JSON."""
    start = time.perf_counter()
    configs, backbones = read_configs(names)
    log(f'check_backbones: {len(names)} configs read in '
        f'{clock(time.perf_counter() - start)}; {len(backbones)} unique backbones, '
        f'methods {", ".join(methods)}, input {size} px (up to {max_size})')

    # One worker process per job, each fed by a parent thread (which only waits on
    # its pipe); results land in the entries, so the order of the JSON is fixed.
    entries = queue.Queue()
    for entry in backbones:
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
                with lock:
                    done[0] += 1
                    log(f"[{done[0]}/{len(backbones)}] {entry['type']} "
                        f"({len(entry['configs'])} configs) {_outcome(entry)}  "
                        f"{entry['seconds']:.1f} s, elapsed "
                        f'{clock(time.perf_counter() - start)}')
        finally:
            checker.close()

    workers = [threading.Thread(target=run_jobs, daemon=True)
               for _ in range(max(1, min(jobs, len(backbones))))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for c in configs.values():
        if c['status'] == CHECKED and backbones[c['backbone']]['error']:
            c.update(status=NOT_BUILT, reason=backbones[c['backbone']]['error'])
    return dict(methods=methods, size=size, max_size=max_size, timeout=timeout,
                jobs=jobs, seconds=round(time.perf_counter() - start, 1),
                cpu_seconds=round(sum(b.get('cpu_seconds', 0) for b in backbones), 1),
                summary=summarise(configs, backbones, methods),
                configs=configs, backbones=backbones)
