"""The method record: what a state dict or pack says about the method that made
it, and the one way two records are compared.

- :func:`record_method` (a state-dict hook every method registers) writes the
  method and its config into the state dict's ``_metadata``; packs write the same
  two fields into their metadata, with the backbone class.
- :func:`method_config_problems` compares a recorded method config with a
  method's; :func:`method_problems` adds the backbone class (packs).
- :func:`check_frozen_identity` compares a recorded identity (sha256) of the
  frozen tensors with a method's, with one message for packs and checkpoints.
"""
import hashlib
import json
import logging
from typing import Dict, List

import torch
import torch.nn as nn
from mmengine.logging import print_log

from .common import META_KEY, CheckpointError, listed

#: method arguments that change training only, never the weights or what they
#: compute at inference: records ignore them.
TRAINING_ONLY_ARGS = ('dropout', )


def to_json(value) -> str:
    """``value`` as sorted JSON; configs may hold classes or functions (a
    ``type``), whose name is what matters."""
    return json.dumps(value, sort_keys=True,
                      default=lambda o: getattr(o, '__qualname__', repr(o)))


def json_normalised(value):
    """``value`` as it reads back from JSON (tuples become lists, ...)."""
    return json.loads(to_json(value))


def type_name(t) -> str:
    return t if isinstance(t, str) else getattr(t, '__qualname__', repr(t))


def class_name(module: nn.Module) -> str:
    return f'{type(module).__module__}.{type(module).__qualname__}'


# -- the record ----------------------------------------------------------------------
def method_record(method) -> dict:
    """What a state dict or pack records of ``method``: its name and config."""
    return dict(method=method.method, method_config=json_normalised(method.method_config()))


def record_method(method, state_dict, prefix, local_metadata) -> None:
    """State-dict hook of every method: the state dict says which method and
    config made it, so the load policy can refuse a checkpoint saved from another
    configuration with the same tensor shapes."""
    local_metadata[META_KEY] = dict(local_metadata.get(META_KEY, {}), **method_record(method))


def _dict_diff(recorded: dict, model: dict, source: str, where: str = '') -> List[str]:
    diffs = []
    for k in sorted(set(recorded) | set(model)):
        a, b = recorded.get(k, '<absent>'), model.get(k, '<absent>')
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += _dict_diff(a, b, source, f'{where}{k}.')
        elif a != b:
            diffs.append(f'{where}{k}: {source} {a!r}, model {b!r}')
    return diffs


def _compared(config: dict) -> dict:
    return json_normalised({k: v for k, v in config.items() if k not in TRAINING_ONLY_ARGS})


def method_config_problems(method, record: dict, source: str = 'pack') -> List[str]:
    """How ``record['method']`` and ``record['method_config']`` (of a pack, or of
    a checkpoint's state dict) differ from ``method``, up to training-only
    options; options absent from older files read as ``method.legacy_defaults``."""
    if record['method'] != method.method:
        return [f"wrong method: the {source} is {record['method']!r}, the model is "
                f'{method.method!r}']
    recorded = {**method.legacy_defaults, **record['method_config']}
    diff = _dict_diff(_compared(recorded), _compared(method.method_config()), source)
    return [f"{record['method']} config differs: {listed(diff)}"] if diff else []


def method_problems(method, record: dict, source: str = 'pack') -> List[str]:
    """:func:`method_config_problems` and the backbone class: what makes a pack
    unfit for ``method`` whatever its neck and heads. Training-time options of
    the backbone (drop_path_rate, norm_cfg BN vs SyncBN, out_indices, ...) change
    no weight and are not compared."""
    problems = method_config_problems(method, record, source)
    model_type = class_name(method.backbone)
    if 'backbone_class' in record:
        recorded = record['backbone_class']
        same = recorded == model_type
    else:  # packs written before the class was recorded
        model_type = type_name(method.backbone_cfg.get('type'))
        recorded = record['backbone_type']
        same = recorded.rsplit('.', 1)[-1] == model_type.rsplit('.', 1)[-1]
    if not same:
        problems.append(f'wrong backbone architecture: the {source} is for '
                        f'{recorded!r}, the model has {model_type!r}')
    return problems


def does_not_fit(where: str, kind: str, problems: List[str]) -> CheckpointError:
    """The error for a pack that does not fit a model, listing every problem."""
    return CheckpointError(f'{where} ({kind} pack) does not fit the model:\n  - '
                           + '\n  - '.join(problems))


# -- the frozen identity -------------------------------------------------------------
def state_identity(state: Dict[str, torch.Tensor]) -> str:
    """sha256 over sorted keys, dtypes, shapes and raw bytes of ``state``:
    deterministic, one pass over the bytes, no copies of contiguous CPU tensors."""
    digest = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach()
        digest.update(f'{key}|{t.dtype}|{tuple(t.shape)}\n'.encode())
        if t.numel():
            t = t.cpu().contiguous().reshape(-1).view(torch.uint8)
            digest.update(memoryview(t.numpy()))
    return digest.hexdigest()


def frozen_identity(method) -> str:
    """:func:`state_identity` of a method's frozen set, cached by each tensor's
    storage address and version counter (bumped by every in-place write), so
    swapping packs does not re-hash a large backbone while a changed one always
    is."""
    state = method.frozen_state_dict()
    stamp = tuple((k, v.data_ptr(), v._version, v.dtype, v.device)
                  for k, v in state.items())
    cached = method.__dict__.get('_frozen_identity')
    if cached is not None and cached[0] == stamp:
        return cached[1]
    sha = state_identity(state)
    method.__dict__['_frozen_identity'] = (stamp, sha)
    return sha


def check_frozen_identity(method, recorded: str, source: str, name: str,
                          allow_mismatch: bool = False) -> bool:
    """Whether ``method``'s frozen tensors have the ``recorded`` identity; a
    mismatch raises, naming ``source`` and the module ``name``, or with
    ``allow_mismatch`` logs a warning and returns False."""
    sha = frozen_identity(method)
    if sha == recorded:
        return True
    msg = (f'{source} was trained on other frozen weights of {name}: recorded sha256 '
           f'{recorded[:16]}..., the model has {sha[:16]}... (is the inner backbone\'s '
           'init_cfg the pretrained checkpoint used in training, and has it been '
           'loaded? When training started from another checkpoint, point the init_cfg '
           'at it or save with PromptCheckpointHook(save_frozen=True))')
    if not allow_mismatch:
        raise CheckpointError(msg + '; allow_frozen_mismatch=True loads it anyway')
    print_log(msg + '; loading anyway (allow_frozen_mismatch=True)',
              logger='current', level=logging.WARNING)
    return False


def recorded_identities(state_dict) -> Dict[str, str]:
    """{method key prefix: sha256} of the frozen tensors dropped from a state dict
    (recorded by ``policy.strip_frozen``)."""
    metadata = getattr(state_dict, '_metadata', None) or {}
    return {(k + '.' if k else ''): v[META_KEY]['frozen_sha256']
            for k, v in metadata.items()
            if isinstance(v, dict) and isinstance(v.get(META_KEY), dict)
            and 'frozen_sha256' in v[META_KEY]}
