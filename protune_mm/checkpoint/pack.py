"""Prompt packs: the small, shareable part of a prompt-tuned model.

A pack is a safetensors file holding either the backbone wrapper's prompts
(``kind='prompts'``) or everything that is not the frozen backbone
(``kind='task'``: prompts + neck + heads), with JSON metadata saying what it
fits: the method and its config, the backbone type and config, an identity
(sha256) of the frozen weights it was trained on, the wrapper's prefix in the
model and the class names.

Loading checks the whole pack against the model before any tensor is copied, so
a refused pack leaves the model exactly as it was. The frozen backbone itself
always comes from its pretrained source (its ``init_cfg``).

Every loader reads packs: importing this module registers a ``CheckpointLoader``
scheme for local ``*.safetensors`` paths (``load_from=PACK``,
``runner.load_checkpoint(PACK)``, mmdet's ``DetInferencer(weights=PACK)``, mmseg's
``MMSegInferencer``), which hands the pack's metadata to the checkpoint policy
(``policy.py``) inside the state dict; the policy initialises the frozen backbone
from its pretrained source and checks the identity before anything is copied.
"""
import json
import logging
import os
import os.path as osp
import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, NamedTuple, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader

from ..fileio import atomic_write
from ..version import __version__
from .policy import (META_KEY, CheckpointError, all_or_none, annotate, check_readable,
                     frozen_identity, listed, methods_of, recorded_identities,
                     state_identity, unwrap_model)

PACK_FORMAT = 'protune_mm.prompt_pack'
PACK_FORMAT_VERSION = 1
PACK_KINDS = ('prompts', 'task')
#: checkpoint['meta'] key under which the checkpoint loader passes pack metadata.
PACK_META_KEY = 'protune_mm_pack'
#: method arguments that change training only, never the weights or what they
#: compute at inference: a pack ignores them.
TRAINING_ONLY_ARGS = ('dropout', )


# -- the model side ------------------------------------------------------------------
def the_wrapper(model: nn.Module) -> Tuple[str, nn.Module]:
    """(prefix with trailing dot, method) of the one prompt method in ``model``."""
    wrappers = methods_of(model)
    if len(wrappers) != 1:
        names = [n[:-1] or '<model>' for n, _ in wrappers]
        raise CheckpointError(
            'prompt packs need exactly one protune_mm backbone wrapper (ProTune, '
            f'VPT, Frozen) in the model, found {len(wrappers)}'
            + (f': {names}' if names else ''))
    return wrappers[0]


def strip_ddp_prefix(key: str) -> str:
    """A state-dict key without DDP's 'module.' (mmengine strips it on load)."""
    return key[len('module.'):] if key.startswith('module.') else key


def select_keys(keys, model: nn.Module, kind: str) -> List[str]:
    """The keys a pack of ``kind`` holds: ``task``, everything but the frozen set;
    ``prompts``, what the method adds (its keys outside the frozen set)."""
    if kind not in PACK_KINDS:
        raise CheckpointError(f'pack kind must be one of {PACK_KINDS}, got {kind!r}')
    prefix, method = the_wrapper(model)
    frozen = {prefix + k for k in method.frozen_keys}
    keys = [k for k in keys if k not in frozen]
    if kind == 'task':
        return keys
    return [k for k in keys if k.startswith(prefix)]


def _method_config(method_cfg: dict) -> dict:
    """A method config as packs compare it (JSON-normalised, training-only
    arguments left out)."""
    return json.loads(_to_json({k: v for k, v in method_cfg.items()
                                if k not in TRAINING_ONLY_ARGS}))


def _to_json(value) -> str:
    # Configs may hold classes/functions as `type`; their name is what matters.
    return json.dumps(value, sort_keys=True,
                      default=lambda o: getattr(o, '__qualname__', repr(o)))


def pack_nbytes(model: nn.Module) -> Dict[str, int]:
    """Bytes of tensor data of each pack kind and of the full state dict
    (sum of numel * element_size; file headers add a few KB)."""
    state = unwrap_model(model).state_dict()
    sizes = {kind: sum(state[k].numel() * state[k].element_size()
                       for k in select_keys(state, model, kind))
             for kind in PACK_KINDS}
    sizes['full'] = sum(v.numel() * v.element_size() for v in state.values())
    return sizes


# -- the pack ------------------------------------------------------------------------
@dataclass
class PromptPack:
    """A pack in memory: tensors (keys as in the exporting model) + metadata.

    Keep several in memory to switch a model between tasks without re-reading
    files: ``load_prompt_pack(model, pack)``.
    """
    tensors: Dict[str, torch.Tensor]
    metadata: Dict[str, object]
    path: Optional[str] = field(default=None)

    @property
    def kind(self) -> str:
        return self.metadata['kind']

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values())

    def __repr__(self):
        return (f'PromptPack(kind={self.kind!r}, method={self.metadata["method"]!r}, '
                f'tensors={len(self.tensors)}, bytes={self.nbytes}, path={self.path!r})')


class LoadResult(NamedTuple):
    """What :func:`load_prompt_pack` loaded."""
    kind: str
    keys: List[str]           # model state-dict keys that were overwritten
    metadata: Dict[str, object]
    frozen_match: bool        # False only when accepted with allow_frozen_mismatch
    path: Optional[str]


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
    if kind not in PACK_KINDS:
        raise CheckpointError(f'pack kind must be one of {PACK_KINDS}, got {kind!r}')
    model = unwrap_model(model)
    prefix, method = the_wrapper(model)
    meta = dict(meta or {})
    if state_dict is None:
        state_dict = model.state_dict()
        sha = frozen_identity(method)
    else:
        sha = _checkpoint_frozen_identity(method, prefix, state_dict)
        state_dict = OrderedDict(
            (strip_ddp_prefix(k), v) for k, v in state_dict.items())
    # Copies: a pack must not change when the model trains or loads on.
    tensors = OrderedDict((k, state_dict[k].detach().clone())
                          for k in select_keys(state_dict, model, kind))
    classes = (meta.get('dataset_meta') or {}).get('classes')
    if classes is None:
        classes = (getattr(model, 'dataset_meta', None) or {}).get('classes')
    metadata = dict(
        format=PACK_FORMAT, format_version=PACK_FORMAT_VERSION, kind=kind,
        method=method.method, method_config=method.method_config(),
        backbone_type=_type_name(method.backbone_cfg.get('type')),
        backbone_class=_class_name(method.backbone),
        backbone_config=json.loads(_to_json(method.backbone_cfg)),
        frozen_sha256=sha, prefix=prefix[:-1],
        classes=list(classes) if classes is not None else None,
        protune_mm_version=__version__)
    pack = PromptPack(tensors, json.loads(_to_json(metadata)))
    # The checkpoint must fit the model it claims to come from (config vs
    # checkpoint mix-ups are caught at export, not at someone else's load).
    _match(model, pack, source='checkpoint')
    return pack


def _type_name(t) -> str:
    return t if isinstance(t, str) else getattr(t, '__qualname__', repr(t))


def _class_name(module: nn.Module) -> str:
    return f'{type(module).__module__}.{type(module).__qualname__}'


def _checkpoint_frozen_identity(method, prefix, state_dict) -> str:
    keys = {strip_ddp_prefix(k): k for k in state_dict}
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


def save_prompt_pack(pack: PromptPack, path: str) -> str:
    """Write ``pack`` to ``path`` atomically: a temp file in the same directory,
    fsync, then ``os.replace``; an interrupted write leaves no file under
    ``path`` (and no temp file)."""
    from safetensors.torch import save_file
    path = osp.abspath(path)
    # safetensors refuses shared or non-contiguous storage; packs are small.
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in pack.tensors.items()}
    metadata = {k: json.dumps(v) for k, v in pack.metadata.items()}
    with atomic_write(path, fsync=True) as tmp:
        save_file(tensors, tmp, metadata=metadata)
    pack.path = path
    return path


def _read_header(path: str) -> Optional[dict]:
    """The safetensors JSON header of ``path``, or None if it has none."""
    try:
        with open(path, 'rb') as f:
            head = f.read(8)
            if len(head) != 8:
                return None
            (size, ) = struct.unpack('<Q', head)
            if size > 100 * 2**20:  # headers are small; this is not one
                return None
            header = json.loads(f.read(size))
        return header if isinstance(header, dict) else None
    except (OSError, ValueError):
        return None


def is_prompt_pack(path) -> bool:
    """True if ``path`` is a file whose safetensors header says it is a prompt
    pack (reads only the header)."""
    if not isinstance(path, (str, os.PathLike)) or not osp.isfile(path):
        return False
    header = _read_header(str(path))
    meta = (header or {}).get('__metadata__') or {}
    return meta.get('format') == json.dumps(PACK_FORMAT)


def read_prompt_pack(path: str) -> PromptPack:
    """Read a pack file. Raises ValueError naming the file if it is truncated,
    corrupt or not a prompt pack."""
    from safetensors import safe_open
    path = str(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'prompt pack {path} does not exist')
    try:
        tensors = OrderedDict()
        with safe_open(path, framework='pt', device='cpu') as f:
            raw = f.metadata() or {}
            for key in f.keys():
                tensors[key] = f.get_tensor(key)
    except Exception as e:  # safetensors raises its own SafetensorError
        raise CheckpointError(f'cannot read prompt pack {path}: truncated or not a '
                              f'safetensors file ({type(e).__name__}: {e})') from e
    try:
        metadata = {k: json.loads(v) for k, v in raw.items()}
    except ValueError as e:
        raise CheckpointError(f'prompt pack {path} has corrupt metadata: {e}') from e
    if metadata.get('format') != PACK_FORMAT:
        raise CheckpointError(f'{path} is a safetensors file but not a protune_mm prompt '
                              f"pack (metadata 'format' is {metadata.get('format')!r}, "
                              f'expected {PACK_FORMAT!r})')
    if metadata.get('format_version') != PACK_FORMAT_VERSION:
        raise CheckpointError(f'prompt pack {path} has format_version '
                              f"{metadata.get('format_version')!r}; this protune_mm "
                              f'reads {PACK_FORMAT_VERSION}')
    required = ('kind', 'method', 'method_config', 'backbone_type', 'backbone_config',
                'frozen_sha256', 'prefix')
    missing = [k for k in required if k not in metadata]
    if missing:
        raise CheckpointError(f'prompt pack {path} lacks metadata {missing}')
    if metadata['kind'] not in PACK_KINDS:
        raise CheckpointError(f"prompt pack {path} has kind {metadata['kind']!r}, "
                              f'allowed {PACK_KINDS}')
    return PromptPack(tensors, metadata, path)


# -- loading -------------------------------------------------------------------------
def _dict_diff(pack: dict, model: dict, where: str = '', source: str = 'pack'
               ) -> List[str]:
    diffs = []
    for k in sorted(set(pack) | set(model)):
        a, b = pack.get(k, '<absent>'), model.get(k, '<absent>')
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += _dict_diff(a, b, f'{where}{k}.', source)
        elif a != b:
            diffs.append(f'{where}{k}: {source} {a!r}, model {b!r}')
    return diffs


def _unscoped(type_name: str) -> str:
    return type_name.rsplit('.', 1)[-1]


def method_config_problems(method, meta: dict, source: str = 'pack') -> List[str]:
    """Whether ``meta['method']`` and ``meta['method_config']`` (of a pack, or
    recorded in a checkpoint's state dict) are ``method``'s, up to training-time
    options; options absent from older files read as ``method.legacy_defaults``."""
    if meta['method'] != method.method:
        return [f"wrong method: the {source} is {meta['method']!r}, the model is "
                f'{method.method!r}']
    recorded = {**method.legacy_defaults, **meta['method_config']}
    diff = _dict_diff(_method_config(recorded), _method_config(method.method_config()),
                      source=source)
    return [f"{meta['method']} config differs: {listed(diff)}"] if diff else []


def record_method(method, state_dict, prefix, local_metadata) -> None:
    """State-dict hook of every method: the state dict says which method and
    config made it (``_metadata`` travels with it through torch.save and every
    loader), so :func:`~.policy.wrapper_load_pre_hook` can refuse a checkpoint
    saved from another configuration with the same tensor shapes."""
    local_metadata[META_KEY] = dict(
        local_metadata.get(META_KEY, {}), method=method.method,
        method_config=json.loads(_to_json(method.method_config())))


def method_problems(method, meta: dict, source: str = 'pack') -> List[str]:
    """What makes a pack unfit for ``method``, whatever its neck and heads: the
    method, its weight-relevant config, and the backbone class. Training-time
    options (dropout, drop_path_rate, norm_cfg BN vs SyncBN, out_indices, ...)
    change no weight and are not compared."""
    problems = method_config_problems(method, meta, source)
    if 'backbone_class' in meta:
        same = meta['backbone_class'] == _class_name(method.backbone)
        model_type = _class_name(method.backbone)
        pack_type = meta['backbone_class']
    else:  # packs written before the class was recorded
        model_type = _type_name(method.backbone_cfg.get('type'))
        pack_type = meta['backbone_type']
        same = _unscoped(pack_type) == _unscoped(model_type)
    if not same:
        problems.append(f'wrong backbone architecture: the {source} is for '
                        f'{pack_type!r}, the model has {model_type!r}')
    return problems


def check_pack_fits_method(method, meta: dict, path: Optional[str] = None) -> None:
    """Raise ValueError if a pack cannot be used with ``method`` (see
    :func:`method_problems`); keys and shapes are checked by the loader."""
    problems = method_problems(method, meta)
    if problems:
        raise CheckpointError(f'{path or "the pack"} ({meta["kind"]} pack) does not fit '
                              'the model:\n  - ' + '\n  - '.join(problems))


def _match(model: nn.Module, pack: PromptPack, source: str = 'pack'
           ) -> Tuple[str, nn.Module, Dict[str, torch.Tensor]]:
    """Check everything but the frozen identity; return (prefix, method,
    {model key: pack tensor}) or raise one ValueError listing every problem."""
    prefix, method = the_wrapper(model)
    meta = pack.metadata
    problems = method_problems(method, meta, source)
    # Prompt packs may move between models that hold the method elsewhere.
    state = unwrap_model(model).state_dict()
    kind = meta['kind']
    src = meta['prefix'] + '.' if meta['prefix'] else ''
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
        name = pack.path or f'this {source}'
        raise CheckpointError(f'{name} ({kind} pack) does not fit the model:\n  - '
                              + '\n  - '.join(problems))
    return prefix, method, remapped


def check_prompt_pack(model: nn.Module, pack: PromptPack,
                      allow_frozen_mismatch: bool = False
                      ) -> Tuple[Dict[str, torch.Tensor], bool]:
    """Validate ``pack`` against ``model`` without changing it.

    Returns ({model key: tensor to copy}, frozen identity matched). Raises
    ValueError naming the problems: wrong method or method config, wrong
    backbone class, differing keys or shapes, and, unless
    ``allow_frozen_mismatch``, frozen weights other than the recorded ones.
    """
    prefix, method, remapped = _match(model, pack)
    sha = frozen_identity(method)
    recorded = pack.metadata['frozen_sha256']
    matched = sha == recorded
    if not matched:
        msg = (f'{pack.path or "the prompt pack"} was trained on other frozen '
               f'backbone weights: recorded identity sha256 {recorded[:16]}..., the '
               f"model's frozen backbone ({prefix}backbone) has {sha[:16]}... "
               '(another pretrained checkpoint, or init_weights has not run)')
        if not allow_frozen_mismatch:
            raise CheckpointError(msg + '; pass allow_frozen_mismatch=True to load anyway')
        print_log(msg + '; loading anyway (allow_frozen_mismatch=True)',
                  logger='current', level=logging.WARNING)
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


# -- export from checkpoints ---------------------------------------------------------
def read_checkpoint(path: str) -> dict:
    """An mmengine ``.pth`` checkpoint with ``weights_only=True`` (the allow-list
    for mmengine's objects comes with ``import protune_mm``)."""
    import pickle
    check_readable(path)
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f'cannot load checkpoint {path} with '
                              f'weights_only=True: {e}') from e
    except RuntimeError as e:  # torch's zip reader on corrupt files
        raise CheckpointError(f'cannot read checkpoint {path}: {e}') from e
    if not isinstance(ckpt, dict):
        raise CheckpointError(f'checkpoint {path} holds a {type(ckpt).__name__}, '
                              'expected a dict')
    return ckpt


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


# -- mmengine CheckpointLoader scheme ------------------------------------------------
def load_pack_as_checkpoint(filename: str, map_location=None) -> dict:
    """CheckpointLoader entry for local ``*.safetensors`` paths.

    A prompt pack becomes ``{'state_dict': tensors, 'meta': {PACK_META_KEY:
    metadata, ...}}``, with the pack's metadata also in the state dict's
    ``_metadata`` for the method it was exported from, where the checkpoint
    policy's load pre-hook reads it whichever loader copies the tensors. Any
    other safetensors file is read as a plain state dict (mmengine's local
    loader would fail on it).
    """
    filename = osp.expanduser(filename)
    if is_prompt_pack(filename):
        pack = read_prompt_pack(filename)
        state, meta = OrderedDict(pack.tensors), {PACK_META_KEY: pack.metadata,
                                                  'protune_mm_pack_path': pack.path}
        if pack.metadata.get('classes') is not None:
            meta['dataset_meta'] = dict(classes=tuple(pack.metadata['classes']))
        prefix = pack.metadata['prefix'] + '.' if pack.metadata['prefix'] else ''
        annotate(state, prefix, pack=pack.metadata, path=pack.path,
                 frozen_sha256=pack.metadata['frozen_sha256'])
    else:
        from safetensors.torch import load_file
        if not osp.isfile(filename):
            raise FileNotFoundError(f'{filename} can not be found.')
        try:
            state, meta = OrderedDict(load_file(filename)), {}
        except Exception as e:
            raise CheckpointError(f'cannot read {filename}: {e}') from e
    if isinstance(map_location, (str, torch.device)) and str(map_location) != 'cpu':
        for k, v in state.items():
            state[k] = v.to(map_location)
    return {'state_dict': state, 'meta': meta}


# CheckpointLoader picks the first scheme whose key re.match()es the path
# (longest keys first, '' = local files last), so a regex matching local paths
# ending in .safetensors takes them before the local loader; URLs keep theirs.
PACK_SCHEME = r'(?![A-Za-z][\w+.-]*://).*\.safetensors$'
CheckpointLoader.register_scheme(prefixes=PACK_SCHEME, loader=load_pack_as_checkpoint,
                                 force=True)


def ensure_pack_hook(cfg, prompts: Optional[str] = None) -> bool:
    """Make the runner built from ``cfg`` validate the packs it loads, and load
    the prompts pack ``prompts`` on top of its checkpoint.

    Adds ``PromptCheckpointHook(save_frozen=True)`` to ``cfg.custom_hooks``
    unless a PromptCheckpointHook is there (``save_frozen=True``: it does not
    change how checkpoints are saved). Returns True if it added one.
    """
    if prompts is not None:
        check_readable(prompts)
        if not is_prompt_pack(prompts) or read_prompt_pack(prompts).kind != 'prompts':
            raise CheckpointError(f'--prompts {prompts}: not a prompts-only pack '
                                  '(export one with tools/export_prompts.py --what '
                                  'prompts)')
    hooks = list(cfg.get('custom_hooks', None) or [])
    for hook in hooks:
        t = hook.get('type') if isinstance(hook, dict) else type(hook)
        if _type_name(t).split('.')[-1] == 'PromptCheckpointHook':
            if prompts is not None:
                hook['prompts'] = prompts
            return False
    hook = dict(type='protune_mm.PromptCheckpointHook', save_frozen=True)
    if prompts is not None:
        hook['prompts'] = prompts
    hooks.append(hook)
    cfg.custom_hooks = hooks
    return True
