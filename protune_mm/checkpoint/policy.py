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
  (``record.record_method``, a state-dict hook), so a checkpoint saved from another
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

  A pack's method record and identity are checked once per load: here, unless
  ``PromptCheckpointHook`` checked the whole pack just before (:func:`mark_checked`).
"""
import logging
from collections import OrderedDict
from typing import Dict

import torch.nn as nn
from mmengine.logging import print_log

from .common import META_KEY, CheckpointError, annotate, display_name, find_methods, listed
from .common import key_prefix as prefix_of
from .record import (check_frozen_identity, does_not_fit, frozen_identity,
                     method_config_problems, method_problems)


# -- saving --------------------------------------------------------------------------
def strip_frozen(state_dict: 'OrderedDict', model: nn.Module, key_prefix: str = ''
                 ) -> Dict[str, str]:
    """Drop every frozen tensor of ``model`` from ``state_dict`` (whose keys carry
    ``key_prefix`` before the model's own, e.g. ``'module.'`` in EMA state dicts)
    and record their identities in its ``_metadata``. Returns {prefix: sha256}."""
    identities = {}
    for name, method in find_methods(model):
        prefix = prefix_of(name)
        for key in method.frozen_keys:
            state_dict.pop(key_prefix + prefix + key, None)
        identities[prefix] = frozen_identity(method)
        annotate(state_dict, key_prefix + prefix, frozen_sha256=identities[prefix])
    return identities


# -- loading -------------------------------------------------------------------------
def mark_checked(method, pack_metadata: dict) -> None:
    """Tell :func:`wrapper_load_pre_hook` that the pack whose metadata is this very
    dict was checked as a whole against ``method`` (``check_prompt_pack``) just
    before this load, so it is not checked twice. A copy of the dict, or any other
    file, is checked as usual."""
    method.__dict__['_checked_pack'] = pack_metadata


def wrapper_load_pre_hook(method, state_dict, prefix, local_metadata, strict,
                          missing_keys, unexpected_keys, error_msgs) -> None:
    """``load_state_dict`` pre-hook of every method (see the module docstring)."""
    info = local_metadata.get(META_KEY) or {}
    pack = info.get('pack')
    name = display_name(prefix)
    checked = pack is not None and method.__dict__.pop('_checked_pack', None) is pack
    if pack is not None:
        if not checked:
            _check_pack(method, pack, info.get('path'), name)
    elif 'method' in info:  # recorded by record.record_method when it was saved
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
    if recorded is not None and not checked:
        check_frozen_identity(method, recorded, info.get('path') or 'the checkpoint', name,
                              bool(info.get('allow_frozen_mismatch')
                                   or getattr(method, 'allow_frozen_mismatch', False)))
    current = method.backbone.state_dict()
    for key, rel in wanted.items():
        state_dict[key] = current[rel[len('backbone.'):]]


def _check_pack(method, pack: dict, path, name: str) -> None:
    """A pack loaded as a whole model: refuse a prompts-only one, and one whose
    method record or backbone class is not ``method``'s."""
    if pack['kind'] == 'prompts':
        raise CheckpointError(
            f"{path or 'the pack'} is a prompts-only pack: it holds "
            f'the prompts of {name} but no neck or heads, which would stay at '
            'their random init. Load a task pack or a checkpoint and this pack '
            'on top of it: tools/test.py CONFIG CHECKPOINT --prompts PACK, or '
            'protune_mm.load_prompt_pack(model, PACK) in Python')
    problems = method_problems(method, pack)
    if problems:
        raise does_not_fit(path or 'the pack', pack['kind'], problems)


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
        raise CheckpointError(f'the checkpoint\'s frozen backbone of {display_name(prefix)} '
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


