"""Prompt packs and models: which tensors a pack holds, making one from a model or
a checkpoint, and checking and loading one into a model.

A pack (``pack_file.py``) holds either the method's prompts (``kind='prompts'``)
or everything that is not the frozen backbone (``kind='task'``: prompts + neck +
heads), with metadata saying what it fits.

Loading checks the whole pack against the model before any tensor is copied
(:func:`check_prompt_pack`, once per load), so a refused pack leaves the model
exactly as it was. The frozen backbone itself always comes from its pretrained
source (its ``init_cfg``). Whole-model loaders (``load_from=PACK``, inferencers)
read packs through the ``CheckpointLoader`` scheme in ``protune_mm/engine``.
"""
from collections import OrderedDict
from typing import Dict, List, NamedTuple, Optional, Tuple, Union

import torch
import torch.nn as nn
from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present

from ..version import __version__
from .common import (CheckpointError, display_name, find_methods, key_prefix, listed,
                     unwrap_model)
from .files import read_checkpoint
from .pack_file import (PACK_FORMAT, PACK_FORMAT_VERSION, PACK_KINDS, PromptPack,
                        check_kind, read_prompt_pack, save_prompt_pack)
from .policy import all_or_none
from .record import (check_frozen_identity, class_name, does_not_fit, frozen_identity,
                     json_normalised, method_problems, method_record,
                     recorded_identities, state_identity, type_name)


class LoadResult(NamedTuple):
    """What :func:`load_prompt_pack` loaded."""
    kind: str
    keys: List[str]           # model state-dict keys that were overwritten
    metadata: Dict[str, object]
    frozen_match: bool        # False only when accepted with allow_frozen_mismatch
    path: Optional[str]


# -- the model side ------------------------------------------------------------------
def the_wrapper(model: nn.Module) -> Tuple[str, nn.Module]:
    """(key prefix with trailing dot, method) of the one prompt method in
    ``model``."""
    methods = find_methods(model)
    if len(methods) != 1:
        names = [n or '<model>' for n, _ in methods]
        raise CheckpointError(
            'prompt packs need exactly one protune_mm backbone wrapper (ProTune, '
            f'VPT, Frozen) in the model, found {len(methods)}'
            + (f': {names}' if names else ''))
    name, method = methods[0]
    return key_prefix(name), method


def select_keys(keys, model: nn.Module, kind: str) -> List[str]:
    """The keys a pack of ``kind`` holds: ``task``, everything but the frozen set;
    ``prompts``, what the method adds (its keys outside the frozen set)."""
    check_kind(kind)
    prefix, method = the_wrapper(model)
    frozen = {prefix + k for k in method.frozen_keys}
    keys = [k for k in keys if k not in frozen]
    if kind == 'task':
        return keys
    return [k for k in keys if k.startswith(prefix)]


def pack_nbytes(model: nn.Module) -> Dict[str, int]:
    """Bytes of tensor data of each pack kind and of the full state dict
    (sum of numel * element_size; file headers add a few KB)."""
    state = unwrap_model(model).state_dict()
    sizes = {kind: sum(state[k].numel() * state[k].element_size()
                       for k in select_keys(state, model, kind))
             for kind in PACK_KINDS}
    sizes['full'] = sum(v.numel() * v.element_size() for v in state.values())
    return sizes


# -- making packs --------------------------------------------------------------------
def make_prompt_pack(model: nn.Module, kind: str = 'task',
                     state_dict: Optional[Dict[str, torch.Tensor]] = None,
                     meta: Optional[dict] = None) -> PromptPack:
    """A pack of ``kind`` from ``state_dict`` (default: the model's own).

    ``model`` gives the structure (method, frozen set, backbone class); its
    weights are only used when ``state_dict`` is None. The frozen identity is
    computed from the state dict's frozen tensors (a full checkpoint), else taken
    from what the checkpoint policy recorded in the state dict (a small
    checkpoint).

    Args:
        meta (dict, optional): checkpoint ``meta``; ``dataset_meta['classes']``
            is recorded when present.
    """
    check_kind(kind)
    model = unwrap_model(model)
    prefix, method = the_wrapper(model)
    meta = dict(meta or {})
    if state_dict is None:
        state_dict = model.state_dict()
        sha = frozen_identity(method)
    else:
        sha = _checkpoint_frozen_identity(method, prefix, state_dict)
        # mmengine strips DDP's 'module.' on load; so does a pack.
        state_dict = OrderedDict(state_dict)
        consume_prefix_in_state_dict_if_present(state_dict, 'module.')
    # Copies: a pack must not change when the model trains or loads on.
    tensors = OrderedDict((k, state_dict[k].detach().clone())
                          for k in select_keys(state_dict, model, kind))
    classes = (meta.get('dataset_meta') or {}).get('classes')
    if classes is None:
        classes = (getattr(model, 'dataset_meta', None) or {}).get('classes')
    metadata = dict(
        format=PACK_FORMAT, format_version=PACK_FORMAT_VERSION, kind=kind,
        **method_record(method),
        backbone_type=type_name(method.backbone_cfg.get('type')),
        backbone_class=class_name(method.backbone),
        backbone_config=method.backbone_cfg,
        frozen_sha256=sha, prefix=prefix[:-1],
        classes=list(classes) if classes is not None else None,
        protune_mm_version=__version__)
    pack = PromptPack(tensors, json_normalised(metadata))
    # The checkpoint must fit the model it claims to come from (config vs
    # checkpoint mix-ups are caught at export, not at someone else's load).
    _match(model, pack, source='checkpoint')
    return pack


def _checkpoint_frozen_identity(method, prefix, state_dict) -> str:
    keys = OrderedDict((k, k) for k in state_dict)
    consume_prefix_in_state_dict_if_present(keys, 'module.')  # {key: key in state_dict}
    wanted = {prefix + k: k for k in method.frozen_keys}
    if all_or_none(wanted, keys, 'the frozen backbone'):
        return state_identity({k[len('backbone.'):]: state_dict[keys[key]]
                               for key, k in wanted.items()})
    recorded = recorded_identities(state_dict)
    for p in (prefix, 'module.' + prefix):
        if p in recorded:
            return recorded[p]
    raise CheckpointError(
        'the checkpoint has no frozen backbone and no recorded identity of it: '
        'export from a full checkpoint or from one saved by PromptCheckpointHook')


def export_prompt_pack(model: nn.Module, checkpoint: Union[str, dict], out: str,
                       kind: str = 'task') -> PromptPack:
    """Write a ``kind`` pack of ``checkpoint`` (a path or a loaded
    ``{'meta': ..., 'state_dict': ...}`` dict; full or small) for ``model``'s
    structure to ``out``."""
    if not isinstance(checkpoint, dict):
        checkpoint = read_checkpoint(checkpoint)
    state = checkpoint.get('state_dict', checkpoint)
    pack = make_prompt_pack(model, kind, state, checkpoint.get('meta'))
    save_prompt_pack(pack, out)
    return pack


# -- checking and loading ------------------------------------------------------------
def _match(model: nn.Module, pack: PromptPack, source: str = 'pack'
           ) -> Tuple[str, nn.Module, Dict[str, torch.Tensor]]:
    """Check everything but the frozen identity; return (prefix, method,
    {model key: pack tensor}) or raise one error listing every problem."""
    prefix, method = the_wrapper(model)
    meta = pack.metadata
    problems = method_problems(method, meta, source)
    # Prompt packs may move between models that hold the method elsewhere.
    state = unwrap_model(model).state_dict()
    kind = meta['kind']
    src = key_prefix(meta['prefix'])
    remapped = OrderedDict()
    for k, v in pack.tensors.items():
        if kind == 'prompts' and k.startswith(src):
            k = prefix + k[len(src):]
        remapped[k] = v
    expected = select_keys(state, model, kind)
    expected_set = set(expected)
    missing = [k for k in expected if k not in remapped]
    unexpected = [k for k in remapped if k not in expected_set]
    shapes = [f'{k}: {source} {tuple(v.shape)}, model {tuple(state[k].shape)}'
              for k, v in remapped.items() if k in state and v.shape != state[k].shape]
    if missing:
        problems.append(f'keys the model has but the {source} lacks: {listed(missing)}')
    if unexpected:
        problems.append(f'keys the {source} has but the model lacks: '
                        f'{listed(unexpected)}')
    if shapes:
        problems.append(f'shape mismatch: {listed(shapes)}')
    if problems:
        raise does_not_fit(pack.path or f'this {source}', kind, problems)
    return prefix, method, remapped


def check_prompt_pack(model: nn.Module, pack: PromptPack,
                      allow_frozen_mismatch: bool = False
                      ) -> Tuple[Dict[str, torch.Tensor], bool]:
    """Validate ``pack`` against ``model`` without changing it.

    Returns ({model key: tensor to copy}, frozen identity matched). Raises
    naming the problems: wrong method or method config, wrong backbone class,
    differing keys or shapes, and, unless ``allow_frozen_mismatch``, frozen
    weights other than the recorded ones.
    """
    prefix, method, remapped = _match(model, pack)
    matched = check_frozen_identity(method, pack.metadata['frozen_sha256'],
                                    pack.path or 'the prompt pack', display_name(prefix),
                                    allow_frozen_mismatch)
    return remapped, matched


def load_prompt_pack(model: nn.Module, pack: Union[str, PromptPack],
                     allow_frozen_mismatch: bool = False) -> LoadResult:
    """Load a prompt pack (path or :class:`PromptPack`) into ``model``.

    All or nothing: the pack is validated completely (see
    :func:`check_prompt_pack`) before the first tensor is copied. A ``prompts``
    pack overwrites the prompts only (neck and heads untouched); a ``task`` pack
    prompts, neck and heads. The frozen backbone is never touched.

    Switching tasks that share heads is loading another pack: keep the packs
    in memory (:func:`read_prompt_pack`) to switch without reading files.
    """
    if not isinstance(pack, PromptPack):
        pack = read_prompt_pack(pack)
    remapped, matched = check_prompt_pack(model, pack, allow_frozen_mismatch)
    state = unwrap_model(model).state_dict()
    with torch.no_grad():
        for k, v in remapped.items():
            state[k].copy_(v)
    return LoadResult(pack.kind, list(remapped), dict(pack.metadata), matched, pack.path)
