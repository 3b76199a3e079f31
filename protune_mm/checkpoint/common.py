"""The vocabulary every part of ``checkpoint/`` shares: its error, the key under
which it writes into a state dict's ``_metadata``, and finding the methods in a
model.

A method is found by what it is, not by its class: a module that recorded its
frozen set (``frozen_keys``, a frozenset of state-dict keys relative to it). So
this layer needs nothing from ``protune_mm.methods``; what it reads from a
method is ``frozen_keys``, ``method``, ``method_config()``, ``legacy_defaults``,
``changed_defaults``, ``frozen_state_dict()``, ``backbone``, ``backbone_cfg``
and the optional ``allow_frozen_mismatch``.
"""
from collections import OrderedDict
from typing import List, Tuple

import torch.nn as nn
from mmengine.model import is_model_wrapper

#: key in a state dict's ``_metadata[<method name>]`` with what this layer
#: records: the method and its config (``record.record_method``), the identity
#: of dropped frozen tensors (``frozen_sha256``), and for packs their metadata
#: (``pack``), ``path`` and ``allow_frozen_mismatch``.
META_KEY = 'protune_mm'


class CheckpointError(ValueError):
    """A checkpoint or pack that cannot do what was asked; the message names the
    file or keys and the way out. Tools print it as one line."""


_MAX_LISTED = 5


def listed(items: List[str]) -> str:
    """At most five items, comma-separated, and how many more there are."""
    more = f' (+{len(items) - _MAX_LISTED} more)' if len(items) > _MAX_LISTED else ''
    return ', '.join(str(i) for i in items[:_MAX_LISTED]) + more


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside a model wrapper (DDP, FSDP, ...), or ``model``."""
    return model.module if is_model_wrapper(model) else model


def is_method(module: nn.Module) -> bool:
    """Whether ``module`` is a prompt method: it recorded its frozen set."""
    return isinstance(getattr(module, 'frozen_keys', None), frozenset)


def find_methods(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    """(name, method) of every prompt method in ``model`` (a model wrapper is
    looked through), named as in ``named_modules()``: '' for the model itself."""
    return [(n, m) for n, m in unwrap_model(model).named_modules() if is_method(m)]


#: the name the package exports (``protune_mm.find_wrappers``).
find_wrappers = find_methods


def key_prefix(name: str) -> str:
    """The state-dict key prefix of the module ``name``: 'a.b.' ('' for the root)."""
    return name + '.' if name else ''


def display_name(prefix: str) -> str:
    """A module's name for messages, from its key prefix."""
    return prefix[:-1] or '<model>'


def frozen_keys(model: nn.Module) -> List[str]:
    """Model state-dict keys of every frozen tensor in ``model``."""
    return [key_prefix(n) + k for n, m in find_methods(model) for k in sorted(m.frozen_keys)]


def annotate(state_dict, prefix: str, **values) -> None:
    """Add ``values`` to what this layer reads for the module at key ``prefix``
    (its entry in the state dict's ``_metadata``, which travels with the state
    dict through torch.save and every loader)."""
    metadata = getattr(state_dict, '_metadata', None)
    if metadata is None:
        metadata = state_dict._metadata = OrderedDict()
    entry = dict(metadata.get(prefix[:-1], {}))
    entry[META_KEY] = dict(entry.get(META_KEY, {}), **values)
    metadata[prefix[:-1]] = entry
