"""Removable changes to modules that are not torch hooks.

A method or adapter sometimes has to change *how* a frozen module computes
(lean frozen ops, window prompts, BEiT's bias for extra tokens) without touching
its parameters, buffers, state-dict keys or the backbone's own ``forward`` code.
It does so by giving that one instance a ``forward`` attribute, which shadows the
class's; ``Module.__call__`` and its hooks call it as usual. Popping the attribute
restores the class's forward exactly.
"""
import functools
from typing import Callable, Optional

import torch.nn as nn


class Handle:
    """A removable change that is not a torch hook; ``remove()`` undoes it once."""

    def __init__(self, remove: Optional[Callable[[], None]]):
        self._remove = remove

    def remove(self) -> None:
        if self._remove is not None:
            self._remove()
            self._remove = None


def rebind_forward(module: nn.Module, forward: Callable) -> Handle:
    """Make ``module`` compute with ``forward`` (instance attribute); the handle
    gives it its class's forward back."""
    if 'forward' in module.__dict__:
        raise RuntimeError(f'{type(module).__name__} already has a rebound forward: '
                           'two changes to one module would undo each other')
    module.forward = forward
    # A partial, not a lambda: the model (with its handles) deep-copies and pickles.
    return Handle(functools.partial(unbind_forward, module))


def unbind_forward(module: nn.Module) -> None:
    module.__dict__.pop('forward', None)

