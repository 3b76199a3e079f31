"""Pro-tuning (Nie et al., "Pro-tuning: Unified Prompt Tuning for Vision Tasks",
arXiv 2207.14381): input-dependent prompt blocks inserted stage by stage into a
frozen backbone."""
import dataclasses
import math
from typing import ClassVar, Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from ..adapters.modules import ModuleStagesAdapter
from ..ops.depthwise import DepthwiseConv2d
from ..registry import MODELS
from .base import PromptMethod
from .config import MethodConfig


SE_ACTIVATIONS = {'silu': nn.SiLU, 'relu': nn.ReLU}


class SqueezeExcite(nn.Module):
    """Channel gating; the gate multiplies its input.

    The reduced width is at least 8 (timm's SE rounds the same way). Its
    activation is SiLU by default (as in EfficientNet's SE): with ReLU, all
    reduced units of a block can start negative for every input (the pooled
    features of a frozen stage vary little), and then the gate never trains;
    ``tools/check_backbones.py`` found such blocks in Swin-T, Darknet-53 and
    ResNet-101 at seed 0.
    """

    def __init__(self, channels: int, ratio: int, act: str = 'silu'):
        super().__init__()
        hidden = max(8, channels // ratio)
        self.reduce = nn.Conv2d(channels, hidden, 1)
        self.expand = nn.Conv2d(hidden, channels, 1)
        self.act = SE_ACTIVATIONS[act]()

    def forward(self, x):
        gate = x.mean((2, 3), keepdim=True)
        gate = self.expand(self.act(self.reduce(gate)))
        return x * torch.sigmoid(gate)


class ProTuneBlock(nn.Module):
    """``x + scale * body(x)`` with body = 1x1 grouped conv -> kxk depthwise conv ->
    1x1 conv -> squeeze-excite -> 1x1 grouped conv.

    ``scale`` starts at 0, so the block starts as the identity while every conv
    keeps a normal init (zero convs give dead gradients and NaNs).

    Args:
        channels (int): feature width C.
        hidden (int): width inside the block; a multiple of ``groups``.
        kernel_size (int): depthwise kernel size (odd).
        groups (int): groups of the two outer 1x1 convs; divides C and ``hidden``.
        se_ratio (int): squeeze-excite reduction.
        scale (str): 'channel' (one factor per channel) or 'scalar'.
        se_act (str): the squeeze-excite activation, 'silu' or 'relu'.
    """

    def __init__(self, channels: int, hidden: int, kernel_size: int = 5,
                 groups: int = 4, se_ratio: int = 16, scale: str = 'channel',
                 se_act: str = 'silu'):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, groups=groups),
            DepthwiseConv2d(hidden, kernel_size),
            nn.Conv2d(hidden, hidden, 1),
            SqueezeExcite(hidden, se_ratio, se_act),
            nn.Conv2d(hidden, channels, 1, groups=groups),
        )
        shape = (1, channels, 1, 1) if scale == 'channel' else (1, )
        self.scale = nn.Parameter(torch.zeros(shape))

    def forward(self, x):
        return x + self.scale * self.body(x)


@dataclasses.dataclass
class ProTuneConfig(MethodConfig):
    """The options of :class:`ProTune` (documented there)."""
    owner: ClassVar[str] = 'ProTune'
    legacy_defaults: ClassVar[Dict[str, object]] = {'se_act': 'relu'}
    changed_defaults: ClassVar[str] = (
        "se_act 'relu' -> 'silu'; place on plain ViTs 'input' -> 'output'")
    # Recorded only when used: packs written before it existed match.
    recorded_if_set: ClassVar[Tuple[str, ...]] = ('stage_modules', )

    stages: Optional[List[int]] = None
    stage_modules: Optional[List[str]] = None
    place: Optional[str] = None
    hidden_ratio: float = 0.5
    kernel_size: int = 5
    groups: int = 4
    se_ratio: int = 16
    scale: str = 'channel'
    se_act: str = 'silu'

    def validate(self) -> None:
        self.check_choice('place', (None, 'input', 'output'),
                          "'input' or 'output' (or None: the backbone family's default)")
        ratio = self.hidden_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not ratio > 0:
            self.fail('hidden_ratio', 'a number > 0')
        for name in ('kernel_size', 'groups', 'se_ratio'):
            self.check_int(name, 1)
        if self.kernel_size % 2 == 0:
            self.fail('kernel_size', 'odd (same-size output)')
        self.check_choice('se_act', sorted(SE_ACTIVATIONS))
        self.check_choice('scale', ('channel', 'scalar'), "'channel' or 'scalar'")
        if self.stage_modules is not None and (isinstance(self.stage_modules, str) or not all(
                isinstance(n, str) and n for n in self.stage_modules)):
            self.fail('stage_modules', "a list of module paths such as ['layer1', "
                      "'stages.0']", TypeError)
        if self.stages is not None and (isinstance(self.stages, int) or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in self.stages)):
            self.fail('stages', 'a list of ints (stage indices)', TypeError)


@MODELS.register_module()
class ProTune(PromptMethod):
    """Pro-tuning: a prompt block per stage of any backbone whose adapter
    describes stages (ResNet family, Swin, :class:`TimmViT`, or a user's own).

    Args:
        backbone (dict): inner backbone config (see :class:`PromptMethod`).
        stages (Sequence[int], optional): indices of the stages that get a prompt
            block; default every stage that reaches a returned feature. Stages
            come from the backbone's adapter (ViT: its blocks in ``num_stages``
            equal groups). A stage that cannot reach a returned feature (after
            the last of ``out_indices``) is refused.
        stage_modules (Sequence[str], optional): the escape hatch for a backbone
            without adapter (or to choose other stages): dotted paths of its
            stage modules, in forward order (``['stem', 'stages.0', ...]``),
            whose input (``place='input'``) or output is an NCHW feature map or a
            list of them. Widths and reachability come from one probe forward at
            construction (``adapters/modules.py``); a named module that reaches
            no returned feature is refused. ``stages`` then indexes this list.
        place (str, optional): 'input' (the block acts on the stage input) or
            'output' (on the stage output, before any downsampling). Default: the
            adapter's ``protune_place``, 'output' for plain ViTs (``TimmViT``,
            mmseg ``VisionTransformer``, ``BEiT``, ``MAE``) and 'input' for every
            other family and for ``stage_modules``; the transfer study
            (docs/transfer_study.md) measured each the better on its family. The
            resolved place is recorded in the method config (and packs).
        hidden_ratio (float): block width as a fraction of the stage width. 0.5
            keeps Pro-tuning R50 at 3.25% of the backbone parameters (asserted
            <= 5% in tests/test_protune.py); full width (1.0) gives 9.79%.
        kernel_size (int): depthwise kernel size, odd. Default 5.
        groups (int): groups of the outer 1x1 convs; must divide the width of
            every stage with a prompt block. On a multi-branch stage a branch
            whose width it does not divide uses their greatest common divisor
            (HRNet-W18's 18-wide branch: 2). Default 4.
        se_ratio (int): squeeze-excite reduction. Default 16.
        scale (str): 'channel' or 'scalar' learnable output scale (init 0).
        se_act (str): squeeze-excite activation: 'silu' (default) or 'relu'
            (what packs written before the option was added used; they are
            read as 'relu', so a 'silu' model refuses them).
        pretrained, init_cfg, memory_efficient, recompute: see :class:`PromptMethod`.
    """
    method = 'protune'
    config_class = ProTuneConfig

    @property
    def place(self) -> str:
        return self.config.place

    @property
    def stage_ids(self) -> List[int]:
        return self.config.stages

    def build_adapter(self):
        names = self.config.stage_modules
        if names is None:
            return super().build_adapter()
        return ModuleStagesAdapter(self.backbone, names=names,
                                   place=self.config.place or ModuleStagesAdapter.protune_place)

    def resolve(self, config: ProTuneConfig) -> ProTuneConfig:
        place = config.place or self.adapter.protune_place
        self._stages = self.adapter.stages()
        stages, field = config.stages, 'stages'
        if stages is None and config.stage_modules is not None:
            # Modules named by the user are refused, not skipped, when dead.
            stages, field = list(range(len(self._stages))), 'stage_modules'
        return dataclasses.replace(config, stages=self._select(stages, place, field),
                                   place=place)

    def extra_repr(self) -> str:
        names = ', '.join(self._stages[i].name for i in self.stage_ids)
        return f'{super().extra_repr()}, blocks at the {self.place} of: {names}'

    def _select(self, stages, place: str, field: str = 'stages') -> list:
        num = len(self._stages)
        reaches = [s.input_reaches_output if place == 'input' else
                   s.output_reaches_output for s in self._stages]
        if stages is None:
            for i, ok in enumerate(reaches):
                if not ok:
                    self.skipped[f'stage {i} ({self._stages[i].name})'] = (
                        f'its {place} reaches no feature the backbone returns')
            return [i for i, ok in enumerate(reaches) if ok]
        stages = sorted(set(stages))
        if not stages:
            raise ValueError(f'ProTune.stages is empty: give indices in [0, {num - 1}] '
                             '(or use protune_mm.Frozen for no prompts)')
        bad = [s for s in stages if not 0 <= s < num]
        if bad:
            raise ValueError(f'ProTune.stages has unknown stage index {bad}: the backbone '
                             f'has {num} stages, allowed [0, {num - 1}]')
        dead = [s for s in stages if not reaches[s]]
        if dead:
            shown = dead if field == 'stages' else [self._stages[s].name for s in dead]
            raise ValueError(
                f'ProTune.{field} {shown} with place={place!r}: the {place} of stage '
                f'{", ".join(self._stages[s].name for s in dead)} reaches no feature '
                'the backbone returns (see its out_indices), so its prompt would get '
                'no gradient (and DDP would fail); drop those stages or return them')
        return stages

    def inject(self) -> list:
        handles = []
        for i in self.stage_ids:
            stage = self._stages[i]
            channels = stage.in_channels if self.place == 'input' else stage.out_channels
            if isinstance(channels, tuple):
                self.prompts[str(i)] = BranchBlocks(
                    [self._block(c, i, stage.name, branch=True) for c in channels])
            else:
                self.prompts[str(i)] = self._block(channels, i, stage.name)
            hook = _StagePrompt(self, str(i))
            if self.place == 'input':
                handles.append(stage.first.register_forward_pre_hook(hook.on_input))
            else:
                handles.append(stage.last.register_forward_hook(hook.on_output))
        return handles

    def _block(self, channels: int, i: int, name: str,
               branch: bool = False) -> ProTuneBlock:
        cfg = self.config
        groups = cfg.groups
        if branch:  # one groups for branches 18, 36, 72, 144 wide (HRNet-W18)
            groups = math.gcd(groups, channels)
        if channels % groups:
            raise ValueError(f'ProTune.groups={groups} must divide the width '
                             f'{channels} of stage {i} ({name})')
        hidden = max(groups, int(round(channels * cfg.hidden_ratio / groups)) * groups)
        return ProTuneBlock(channels, hidden, cfg.kernel_size, groups, cfg.se_ratio,
                            cfg.scale, cfg.se_act)


class BranchBlocks(nn.ModuleList):
    """The prompt blocks of a multi-branch stage (HRNet), one per branch: the
    i-th block acts on the i-th map of the stage's list."""

    def forward(self, maps):
        return [block(x) for block, x in zip(self, maps, strict=True)]


class _StagePrompt:
    """Forward hooks that add a prompt block's output to a stage's feature."""

    def __init__(self, method: ProTune, key: str):
        self.method, self.key = method, key

    def on_input(self, module, args):
        if not self.method.prompts_enabled:
            return None
        x = self.method.adapter.apply(self.method.prompts[self.key], args[0], args)
        return (x, ) + tuple(args[1:])

    def on_output(self, module, args, output):
        if not self.method.prompts_enabled:
            return None
        return self.method.adapter.apply(self.method.prompts[self.key], output, args)
