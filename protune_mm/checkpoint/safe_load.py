"""Let torch >= 2.6 load mmengine checkpoints with ``weights_only=True``.

torch 2.6 made ``torch.load`` default to ``weights_only=True``; mmengine 0.10.7
calls it without the argument, so ``--resume`` and ``load_from`` of its own
checkpoints fail with ``UnpicklingError`` (open-mmlab/mmengine#1655). Rather than
turning safe loading off, allow-list exactly what those checkpoints hold: the
message hub's ``HistoryBuffer``, the numpy arrays/scalars/dtypes inside it, and
the ``getattr(HistoryBuffer, 'min')``-style references to its statistics methods.
Everything else still goes through torch's restricted unpickler.
"""
import numpy as np
import torch


def _history_buffer_getattr(obj, name):
    """Stands in for ``getattr`` while unpickling: HistoryBuffer pickles its
    statistics methods as getattr(HistoryBuffer, name). Anything else is refused,
    since a general getattr would let a file reach arbitrary methods."""
    from mmengine.logging.history_buffer import HistoryBuffer
    if obj is HistoryBuffer and isinstance(name, str) and \
            isinstance(HistoryBuffer.__dict__.get(name), type(_history_buffer_getattr)):
        return getattr(HistoryBuffer, name)
    raise RuntimeError(f'refusing getattr({obj!r}, {name!r}) while loading a '
                       'checkpoint with weights_only=True')


def mmengine_checkpoint_globals() -> list:
    from mmengine.logging.history_buffer import HistoryBuffer
    multiarray = (getattr(np, '_core', None) or np.core).multiarray
    safe = [HistoryBuffer, np.ndarray, np.dtype, multiarray._reconstruct,
            multiarray.scalar,
            (_history_buffer_getattr, 'builtins.getattr'),
            (_history_buffer_getattr, '__builtin__.getattr')]
    # numpy >= 1.25 pickles dtypes as instances of per-type classes
    # (numpy.dtypes.Float64DType, ...).
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        safe += [getattr(dtypes, n) for n in dir(dtypes)
                 if n.endswith('DType') and isinstance(getattr(dtypes, n), type)]
    return safe


if hasattr(torch.serialization, 'add_safe_globals'):  # torch >= 2.4
    torch.serialization.add_safe_globals(mmengine_checkpoint_globals())
