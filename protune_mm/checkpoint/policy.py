"""The one checkpoint policy: what a checkpoint of a prompt-tuned model holds, and
what a loaded file may change.

- **Frozen** is the set of tensors each method recorded at construction
  (``method.frozen_keys``); every rule below derives from it.
- **Saving** may drop the frozen tensors (:func:`strip_frozen`); the identity
  (sha256) of what was dropped is then written into the state dict's own
  ``_metadata`` under the method's prefix, so it travels with the state dict
  through every loader (mmengine's runner, ``load_checkpoint``, mmdet's
  ``DetInferencer``, mmseg's ``MMSegInferencer``, ``load_state_dict``).
- Every state dict of a method also records the method and its config
  (``pack.record_method``, a state-dict hook), so a checkpoint saved from another
  configuration with the same tensor shapes (ProTune's ``place`` on a ViT) is
  refused, not loaded into the wrong places. Older checkpoints lack the record: they
  load as before, with a warning naming the model's config.
- **Loading** goes through one ``load_state_dict`` pre-hook on every method
  (:func:`wrapper_load_pre_hook`), so no loader can bypass it:

  * all frozen tensors present: a full checkpoint; they are loaded.
  * the inner backbone's tensors at the method's own prefix (a stock mmdet /
    mmseg checkpoint, ``backbone.conv1.weight``): mapped into the frozen backbone
    (``backbone.backbone.conv1.weight``), logged.
  * some but not all of them: refused, naming the missing keys.
  * none: a small checkpoint or a pack. The frozen backbone comes from its
    pretrained source (its ``init_cfg``; loaded now if the model was never
    initialised, as inferencers and ``Runner.test()`` leave it), must have the
    recorded identity (else refused), and is kept.
  * a prompts-only pack loaded as a whole model: refused (neck and heads would
    stay at their random init); load it on top with ``load_prompt_pack`` or
    ``tools/test.py CONFIG CHECKPOINT --prompts PACK``.
"""
import hashlib
import logging
import os.path as osp
import struct
import zipfile
from collections import OrderedDict
from typing import Dict, List

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

#: key in a state dict's ``_metadata[<method prefix>]`` with what the policy
#: records: ``frozen_sha256`` (identity of the dropped frozen tensors), and for
#: packs their metadata (``pack``) and ``allow_frozen_mismatch``.
META_KEY = 'protune_mm'


class CheckpointError(ValueError):
    """A checkpoint or pack that cannot do what was asked; the message names the
    file or keys and the way out. Tools print it as one line."""


_MAX_LISTED = 5


def listed(items: List[str]) -> str:
    more = f' (+{len(items) - _MAX_LISTED} more)' if len(items) > _MAX_LISTED else ''
    return ', '.join(str(i) for i in items[:_MAX_LISTED]) + more


def unwrap_model(model: nn.Module) -> nn.Module:
    return model.module if is_model_wrapper(model) else model


def methods_of(model: nn.Module) -> List[tuple]:
    """(prefix with trailing dot or '', method) of every prompt method in
    ``model``."""
    from ..methods.base import PromptMethod
    return [(n + '.' if n else '', m) for n, m in unwrap_model(model).named_modules()
            if isinstance(m, PromptMethod)]


def frozen_keys(model: nn.Module) -> List[str]:
    """Model state-dict keys of every frozen tensor in ``model``."""
    return [p + k for p, m in methods_of(model) for k in sorted(m.frozen_keys)]


# -- identity ------------------------------------------------------------------------
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


# -- saving --------------------------------------------------------------------------
def strip_frozen(state_dict: 'OrderedDict', model: nn.Module, key_prefix: str = ''
                 ) -> Dict[str, str]:
    """Drop every frozen tensor of ``model`` from ``state_dict`` (whose keys carry
    ``key_prefix`` before the model's own, e.g. ``'module.'`` in EMA state dicts)
    and record their identities in its ``_metadata``. Returns {prefix: sha256}."""
    metadata = getattr(state_dict, '_metadata', None)
    if metadata is None:
        metadata = state_dict._metadata = OrderedDict()
    identities = {}
    for prefix, method in methods_of(model):
        for key in method.frozen_keys:
            state_dict.pop(key_prefix + prefix + key, None)
        sha = frozen_identity(method)
        entry = dict(metadata.get((key_prefix + prefix)[:-1], {}))
        entry[META_KEY] = dict(entry.get(META_KEY, {}), frozen_sha256=sha)
        metadata[(key_prefix + prefix)[:-1]] = entry
        identities[prefix] = sha
    return identities


def recorded_identities(state_dict) -> Dict[str, str]:
    """{method prefix: sha256} recorded by :func:`strip_frozen` in a state dict."""
    metadata = getattr(state_dict, '_metadata', None) or {}
    return {(k + '.' if k else ''): v[META_KEY]['frozen_sha256']
            for k, v in metadata.items()
            if isinstance(v, dict) and isinstance(v.get(META_KEY), dict)
            and 'frozen_sha256' in v[META_KEY]}


def annotate(state_dict, prefix: str, **values) -> None:
    """Add ``values`` to what the policy reads for the method at ``prefix``."""
    metadata = getattr(state_dict, '_metadata', None)
    if metadata is None:
        metadata = state_dict._metadata = OrderedDict()
    entry = dict(metadata.get(prefix[:-1], {}))
    entry[META_KEY] = dict(entry.get(META_KEY, {}), **values)
    metadata[prefix[:-1]] = entry


# -- loading -------------------------------------------------------------------------
def wrapper_load_pre_hook(method, state_dict, prefix, local_metadata, strict,
                          missing_keys, unexpected_keys, error_msgs) -> None:
    """``load_state_dict`` pre-hook of every method (see the module docstring)."""
    info = local_metadata.get(META_KEY) or {}
    pack = info.get('pack')
    name = prefix[:-1] or '<model>'
    if pack is not None:
        from .pack import check_pack_fits_method
        if pack['kind'] == 'prompts':
            raise CheckpointError(
                f"{info.get('path') or 'the pack'} is a prompts-only pack: it holds "
                f'the prompts of {name} but no neck or heads, which would stay at '
                'their random init. Load a task pack or a checkpoint and this pack '
                'on top of it: tools/test.py CONFIG CHECKPOINT --prompts PACK, or '
                'protune_mm.load_prompt_pack(model, PACK) in Python')
        check_pack_fits_method(method, pack, info.get('path'))
    elif 'method' in info:  # recorded by pack.record_method when it was saved
        from .pack import method_config_problems
        problems = method_config_problems(method, info, 'checkpoint')
        if problems:
            raise CheckpointError(
                f"{info.get('path') or 'the checkpoint'} was saved from another "
                f'configuration of {name}: {"; ".join(problems)}. Build the model '
                "with the checkpoint's arguments")
    elif any(k.startswith(prefix + 'prompts.') for k in state_dict):
        # Saved before state dicts recorded their method: nothing to compare, and
        # some defaults have changed since, so say so rather than load silently.
        changed = (f' (defaults that changed: {method.changed_defaults})'
                   if method.changed_defaults else '')
        print_log(f"{info.get('path') or 'the checkpoint'} records no method config "
                  f'(saved before protune_mm recorded it), so it cannot be checked '
                  f'against {name}: {method.method} {method.method_config()}. Build '
                  f'the model with the arguments it was trained with{changed}',
                  logger='current', level=logging.WARNING)
    wanted = {prefix + k: k for k in method.frozen_keys}
    if all_or_none(wanted, state_dict, f'the frozen backbone of {name}'):
        _check_frozen_shapes(method, state_dict, prefix, wanted)
        return
    inner = {prefix + k[len('backbone.'):]: prefix + k for k in method.frozen_keys}
    if all_or_none(inner, state_dict, f'the stock-layout backbone of {name} '
                                      f'({prefix}<key> without the wrapper)'):
        for src, dst in inner.items():
            state_dict[dst] = state_dict.pop(src)
        _check_frozen_shapes(method, state_dict, prefix, wanted)
        print_log(f'{type(method).__name__} at {name}: loading the checkpoint\'s '
                  f'{len(inner)} stock backbone tensors {prefix}* into the frozen '
                  f'backbone {prefix}backbone.*', logger='current')
        return
    ensure_frozen_initialised(method, name)
    recorded = info.get('frozen_sha256')
    if recorded is not None:
        sha = frozen_identity(method)
        if sha != recorded:
            msg = (f"{info.get('path') or 'the checkpoint'} was trained on other "
                   f'frozen weights of {name}: recorded sha256 {recorded[:16]}..., '
                   f'the model has {sha[:16]}... (is the inner backbone\'s init_cfg '
                   'the pretrained checkpoint used in training? When training '
                   'started from another checkpoint, point the init_cfg at it or '
                   'save with PromptCheckpointHook(save_frozen=True))')
            if not (info.get('allow_frozen_mismatch')
                    or getattr(method, 'allow_frozen_mismatch', False)):
                raise CheckpointError(msg + '; allow_frozen_mismatch=True loads it anyway')
            print_log(msg + '; loading anyway (allow_frozen_mismatch=True)',
                      logger='current', level=logging.WARNING)
    current = method.backbone.state_dict()
    for key, rel in wanted.items():
        state_dict[key] = current[rel[len('backbone.'):]]


def all_or_none(wanted, state_dict, what: str) -> bool:
    """True if ``state_dict`` holds every key of ``wanted``, False if none;
    refuses a part, naming the missing keys."""
    present = [k for k in wanted if k in state_dict]
    if present and len(present) != len(wanted):
        missing = sorted(set(wanted) - set(present))
        raise CheckpointError(
            f'the checkpoint holds only part of {what}: it lacks {len(missing)} of '
            f'{len(wanted)} tensors ({listed(missing)}); refusing to load it half')
    return bool(present)


def _check_frozen_shapes(method, state_dict, prefix, wanted) -> None:
    own = method.backbone.state_dict()
    bad = [f'{k}: checkpoint {tuple(state_dict[k].shape)}, model '
           f'{tuple(own[r[len("backbone."):]].shape)}' for k, r in wanted.items()
           if tuple(state_dict[k].shape) != tuple(own[r[len('backbone.'):]].shape)]
    if bad:
        raise CheckpointError(f'the checkpoint\'s frozen backbone of {prefix[:-1] or "<model>"} '
                              f'does not fit the model: {listed(bad)}')


def has_pretrained_source(backbone: nn.Module) -> bool:
    """Whether ``init_weights`` loads pretrained weights (mmengine's ``Pretrained``
    init, or TimmViT's weights) rather than drawing random ones."""
    init_cfg = getattr(backbone, 'init_cfg', None)
    cfgs = init_cfg if isinstance(init_cfg, list) else [init_cfg]
    return (any(isinstance(c, dict) and c.get('type') == 'Pretrained' for c in cfgs)
            or bool(getattr(backbone, 'weights_cfg', None)))


def ensure_frozen_initialised(method, name: str = '') -> None:
    """Load the frozen backbone from its pretrained source unless the model was
    initialised (``Runner.test()`` and the inferencers never call
    ``init_weights``). A backbone without one keeps its tensors."""
    backbone = method.backbone
    if (getattr(backbone, 'is_init', False) or method.__dict__.get('_frozen_initialised')
            or not has_pretrained_source(backbone)):
        return
    print_log(f'{type(method).__name__} at {name or "<model>"}: the checkpoint has no '
              'frozen backbone; initialising it from its pretrained source '
              '(init_cfg) first', logger='current')
    if hasattr(backbone, 'init_weights'):
        backbone.init_weights()
    method.__dict__['_frozen_initialised'] = True


# -- files ---------------------------------------------------------------------------
def check_readable(path: str) -> None:
    """Raise ValueError (one line naming the file and why) if ``path`` cannot be a
    readable checkpoint or pack; reads only headers/directories. URLs and other
    non-local paths pass (their loaders report)."""
    if '://' in str(path):
        return
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path} does not exist')
    if str(path).endswith('.safetensors'):
        _check_safetensors(path)
        return
    with open(path, 'rb') as f:
        magic = f.read(4)
    if magic == b'PK\x03\x04':  # torch's zip format (torch >= 1.6)
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError) as e:
            raise CheckpointError(f'cannot read checkpoint {path}: truncated or corrupt '
                                  f'({e})') from None
        if not any(n.endswith('data.pkl') for n in names):
            raise CheckpointError(f'cannot read checkpoint {path}: a zip file but not a '
                                  'torch checkpoint (no data.pkl)')
    elif len(magic) < 4:
        raise CheckpointError(f'cannot read checkpoint {path}: {len(magic)} bytes, empty '
                              'or truncated')


def _check_safetensors(path: str) -> None:
    import json
    size = osp.getsize(path)
    with open(path, 'rb') as f:
        head = f.read(8)
        n = struct.unpack('<Q', head)[0] if len(head) == 8 else None
        if n is None or n + 8 > size:
            raise CheckpointError(f'cannot read {path}: truncated or not a safetensors file')
        try:
            header = json.loads(f.read(n))
        except ValueError:
            raise CheckpointError(f'cannot read {path}: corrupt safetensors header') from None
    ends = [v['data_offsets'][1] for k, v in header.items() if k != '__metadata__']
    if ends and max(ends) + n + 8 > size:
        raise CheckpointError(f'cannot read {path}: truncated ({size:,} bytes, the header '
                              f'describes {max(ends) + n + 8:,})')
