"""Stages named by module path, described by one probe forward.

:class:`ModuleStagesAdapter` takes the dotted paths of a backbone's stage modules
(``'layer1'``, ``'stages.0'``, ``'features.22'``) and finds the rest itself, by
running the frozen backbone once, at construction, on a small random image:

- the widths: each module's input (first positional argument) and output must
  be an NCHW feature map, or a list of them (a multi-branch stage, as HRNet's);
- reachability: which of those tensors the returned features depend on (the
  autograd graph of the probe, so it holds whatever the backbone's
  ``out_indices`` are called and however its forward is written).

It is the escape hatch for a backbone nobody described
(``ProTune(backbone=..., stage_modules=[...])``) and the base of the family
adapters that only need to name their stage modules (HRNet, MobileNetV2, ...).
"""
import difflib
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from .base import BackboneAdapter, Stage

Layout = Union[int, Tuple[int, ...], str]


def _is_map(t) -> bool:
    return isinstance(t, torch.Tensor) and t.dim() == 4 and t.is_floating_point()


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f'a {value.dtype} tensor of shape {tuple(value.shape)}'
    if isinstance(value, (list, tuple)):
        items = ', '.join(_describe(v) for v in value[:4])
        more = ', ...' if len(value) > 4 else ''
        return f'a {type(value).__name__} of {len(value)} ({items}{more})'
    return f'a {type(value).__name__}'


def _layout(value) -> Layout:
    """Width of a map, widths of a list of maps, or what the value is instead."""
    if _is_map(value):
        return value.shape[1]
    if isinstance(value, (list, tuple)) and value and all(_is_map(v) for v in value):
        return tuple(v.shape[1] for v in value)
    return _describe(value)


def _tap(value, leaves: list):
    """``value`` plus a zero leaf per floating tensor in it: the leaves' gradients
    say which returned features depend on that tensor (the values are unchanged)."""
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        leaf = torch.zeros_like(value, requires_grad=True)
        leaves.append(leaf)
        return value + leaf
    if isinstance(value, (list, tuple)) and value:
        return type(value)(_tap(v, leaves) for v in value)
    return value


class _Probe:
    """Hooks of one named module: record its input and output, tap them."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.calls = 0
        self.input: Layout = 'no positional argument'
        self.output: Layout = 'nothing'
        self.in_leaves: List[torch.Tensor] = []
        self.out_leaves: List[torch.Tensor] = []

    def pre(self, module, args):
        self.calls += 1
        if not args:
            return None
        self.input = _layout(args[0])
        return (_tap(args[0], self.in_leaves), ) + tuple(args[1:])

    def post(self, module, args, output):
        self.output = _layout(output)
        return _tap(output, self.out_leaves)


def probe_forward(backbone: nn.Module, sizes: Sequence[int],
                  channels: Optional[Sequence[int]] = None, grad: bool = False,
                  before: Optional[Callable[[], object]] = None,
                  what: str = 'the probe forward'):
    """``(output, side)`` of one forward of ``backbone`` on a random 1 x C x side x
    side image, for the first ``side`` in ``sizes`` (and C in ``channels``, by
    default 3 then the first conv's) that it takes. Every module is in eval mode
    for the call (BatchNorm statistics do not move) and back in its own mode
    after; ``before`` runs before each try. Raises RuntimeError listing every
    try's error when none runs."""
    param = next(backbone.parameters(), None)
    device = param.device if param is not None else torch.device('cpu')
    # A private generator: the probe leaves the global RNG (prompt init) alone.
    generator = torch.Generator().manual_seed(0)
    # Set and restored module by module (a backbone's own train() may do more,
    # e.g. freeze its stages).
    modes = {m: m.training for m in backbone.modules()}
    for m in modes:
        m.training = False
    errors = []
    try:
        for c in channels or _input_channels(backbone):
            for size in sizes:
                if before is not None:
                    before()
                x = torch.randn(1, c, size, size, generator=generator).to(device)
                try:
                    with torch.set_grad_enabled(grad):
                        return backbone(x), size
                except Exception as e:  # a wrong width or too small an image: retry
                    errors.append(f'{c}x{size}x{size}: {type(e).__name__}: {e}')
    finally:
        for m, mode in modes.items():
            m.training = mode
    raise RuntimeError(f'{what} of {type(backbone).__name__} failed for every image '
                       '(CxHxW) tried:\n  ' + '\n  '.join(errors))


def _input_channels(backbone: nn.Module) -> List[int]:
    """Image channels to try: 3, else the first conv's (not CSPDarknet's Focus
    stem, whose conv takes 4x; nor an ``in_channels`` attribute: MobileNetV2 uses
    that name for a running width)."""
    conv = next((m for m in backbone.modules() if isinstance(m, nn.Conv2d)), None)
    return [3] + ([conv.in_channels] if conv is not None and conv.in_channels != 3
                  else [])


class ModuleStagesAdapter(BackboneAdapter):
    """Stages given as module paths, in forward order.

    Args:
        backbone (nn.Module): the backbone.
        names (Sequence[str], optional): dotted paths of the stage modules
            (``backbone.get_submodule`` paths); subclasses give them in
            :meth:`stage_modules` instead.
        place (str, optional): 'input' or 'output': only that side of each
            module must be a feature map (the other gets width None). Default:
            both sides must be.

    Each module must be called exactly once per forward. Its input is its first
    positional argument. The probe image is ``probe_sizes[0]`` square, or the
    next size where the backbone refuses a smaller one.
    """

    family = 'stage_modules'
    #: probe image sides, tried in order until the backbone's forward succeeds.
    probe_sizes: Sequence[int] = (32, 64, 128, 256, 512)

    def __init__(self, backbone: nn.Module, names: Optional[Sequence[str]] = None,
                 place: Optional[str] = None):
        super().__init__(backbone)
        self._names = None if names is None else list(names)
        self._sides = ('input', 'output') if place is None else (place, )
        self._stages: Optional[List[Stage]] = None

    def stage_modules(self) -> List[str]:
        """Dotted paths of the stage modules, in forward order."""
        if self._names is None:
            raise TypeError(f'{type(self).__name__} needs the stage module names')
        return self._names

    def stages(self) -> List[Stage]:
        if self._stages is None:
            self._stages = self._probe(self.stage_modules())
        return self._stages

    # -- the probe -------------------------------------------------------------------
    def _resolve(self, names: Sequence[str]) -> Dict[str, nn.Module]:
        modules = dict(self.backbone.named_modules())
        modules.pop('')
        cls = type(self.backbone).__name__
        resolved = {}
        for name in names:
            if name not in modules:
                near = difflib.get_close_matches(name, list(modules), n=5, cutoff=0.5)
                top = [n for n, _ in self.backbone.named_children()]
                raise ValueError(
                    f'{self.family}: {cls} has no module {name!r}; nearest: '
                    f'{", ".join(near) or "none"}; its top-level modules: '
                    f'{", ".join(top)}')
            if name in resolved:
                raise ValueError(f'{self.family}: module {name!r} is named twice')
            resolved[name] = modules[name]
        return resolved

    def _probe(self, names: Sequence[str]) -> List[Stage]:
        if not names:
            raise ValueError(f'{self.family}: no stage modules named')
        modules = self._resolve(names)
        cls = type(self.backbone).__name__
        probes = {name: _Probe() for name in modules}
        handles = []
        for name, module in modules.items():
            handles.append(module.register_forward_pre_hook(probes[name].pre))
            handles.append(module.register_forward_hook(probes[name].post))
        try:
            out, size = probe_forward(
                self.backbone, self.probe_sizes, grad=True,
                before=lambda: [probe.reset() for probe in probes.values()],
                what=f'{self.family}: the probe forward (to find the stage widths)')
        finally:
            for handle in handles:
                handle.remove()

        from ..check import _features
        returned = [t for t in _features(out) if t.requires_grad]
        leaves = [leaf for p in probes.values() for leaf in p.in_leaves + p.out_leaves]
        grads = (torch.autograd.grad(sum(t.sum() for t in returned), leaves,
                                     allow_unused=True) if returned and leaves
                 else [None] * len(leaves))
        reached = {id(leaf): g is not None for leaf, g in zip(leaves, grads)}

        stages = []
        for name, probe in probes.items():
            if probe.calls != 1:
                raise ValueError(
                    f'{self.family}: module {name!r} is called {probe.calls} times in '
                    f'a forward of {cls} ({size}x{size} probe image); a stage module '
                    'must be called exactly once')
            widths = {}
            for side, layout in (('input', probe.input), ('output', probe.output)):
                if isinstance(layout, str):
                    if side in self._sides:
                        raise ValueError(
                            f'{self.family}: the {side} of module {name!r} is {layout}, '
                            'not a (B, C, H, W) feature map or a list of them '
                            f'({size}x{size} probe image)')
                    layout = None
                widths[side] = layout
            stages.append(Stage(
                name, modules[name], modules[name], widths['input'], widths['output'],
                widths['input'] is not None and all(
                    reached[id(leaf)] for leaf in probe.in_leaves),
                widths['output'] is not None and all(
                    reached[id(leaf)] for leaf in probe.out_leaves)))
        return stages
