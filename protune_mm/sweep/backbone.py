"""One unique backbone checked in this process: the bare backbone is built and run
at the smallest input side that works, then every method goes through
``protune_mm.check.check_method`` at that side."""
import copy
import gc
import signal
import time
import warnings
from contextlib import contextmanager
from typing import Callable, List, Optional

from .configs import reason


@contextmanager
def time_limit(seconds: float):
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


def input_channels(cfg: dict) -> int:
    """The image channels a backbone takes: its ``in_channels`` (6 for mmseg's
    change-detection Swin), else 3."""
    channels = cfg.get('in_channels')
    return channels if isinstance(channels, int) and channels > 0 else 3


def input_sizes(cfg: dict, size: int, max_size: int) -> List[int]:
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
        return reason(e)
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

    from .methods import method_types
    types = method_types()
    with DefaultScope.overwrite_default_scope(scope), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.manual_seed(0)
        try:
            bare = MODELS.build(copy.deepcopy(cfg))
        except TimeoutError:
            raise
        except Exception as e:
            report('error', f'does not build: {reason(e)}')
            return
        bare.eval()
        channels = input_channels(cfg)
        sizes = input_sizes(cfg, size, max_size)
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
                outcome = check_method(dict(type=types[name], backbone=cfg),
                                       (1, channels, tried, tried), bare=bare)
                entry = dict(ok=outcome.ok, failures=outcome.failures,
                             trainable=outcome.trainable)
            except TimeoutError:
                raise
            except Exception as e:  # a refusal (no adapter, ...) is a result
                entry = dict(ok=False, failures=[reason(e)], trainable=None)
            entry['seconds'] = round(time.perf_counter() - start, 2)
            report('method', name, entry)
            gc.collect()
