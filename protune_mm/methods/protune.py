"""Pro-tuning (Nie et al., "Pro-tuning: Unified Prompt Tuning for Vision Tasks",
arXiv 2207.14381): input-dependent prompt blocks inserted stage by stage into a
frozen backbone."""
import functools
import math
from typing import Optional, Sequence

import torch
import torch.nn as nn

from ..adapters.modules import ModuleStagesAdapter
from ..ops.depthwise import DepthwiseConv2d
from ..registry import MODELS
from .base import PromptMethod


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
            other family and for ``stage_modules``; the transfer study measured
            each the better on its family (README). The resolved place is
            recorded in the method config (and packs).
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
        pretrained, init_cfg, memory_efficient: see :class:`PromptMethod`.
    """
    method = 'protune'
    legacy_defaults = {'se_act': 'relu'}
    changed_defaults = "se_act 'relu' -> 'silu'; place on plain ViTs 'input' -> 'output'"

    def __init__(self, backbone: dict, stages: Optional[Sequence[int]] = None,
                 stage_modules: Optional[Sequence[str]] = None,
                 place: Optional[str] = None, hidden_ratio: float = 0.5,
                 kernel_size: int = 5, groups: int = 4, se_ratio: int = 16,
                 scale: str = 'channel', se_act: str = 'silu',
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None,
                 memory_efficient: Optional[bool] = None):
        # Cheap checks first, so a bad config fails before the backbone is built.
        if place not in (None, 'input', 'output'):
            raise ValueError(f"ProTune.place must be 'input' or 'output' (or None: "
                             f"the backbone family's default), got {place!r}")
        if isinstance(hidden_ratio, bool) or not isinstance(hidden_ratio, (int, float)) \
                or not hidden_ratio > 0:
            raise ValueError(f'ProTune.hidden_ratio must be a number > 0, got '
                             f'{hidden_ratio!r}')
        for field, value in (('kernel_size', kernel_size), ('groups', groups),
                             ('se_ratio', se_ratio)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f'ProTune.{field} must be a positive int, got {value!r}')
        if kernel_size % 2 == 0:
            raise ValueError(f'ProTune.kernel_size must be odd (same-size output), '
                             f'got {kernel_size}')
        if se_act not in SE_ACTIVATIONS:
            raise ValueError(f'ProTune.se_act must be one of {sorted(SE_ACTIVATIONS)}, '
                             f'got {se_act!r}')
        if scale not in ('channel', 'scalar'):
            raise ValueError(f"ProTune.scale must be 'channel' or 'scalar', got {scale!r}")
        adapter = None
        if stage_modules is not None:
            if isinstance(stage_modules, str) or not all(
                    isinstance(n, str) and n for n in stage_modules):
                raise TypeError('ProTune.stage_modules must be a list of module paths '
                                f"such as ['layer1', 'stages.0'], got {stage_modules!r}")
            place = place or ModuleStagesAdapter.protune_place
            adapter = functools.partial(ModuleStagesAdapter, names=stage_modules,
                                        place=place)
        super().__init__(backbone, pretrained=pretrained, init_cfg=init_cfg,
                         memory_efficient=memory_efficient, adapter=adapter)
        if stage_modules is None:  # recorded only when used: older packs match
            self._method_cfg.pop('stage_modules')
        place = place or self.adapter.protune_place
        self._stages = self.adapter.stages()
        field = 'stages'
        if stages is None and stage_modules is not None:
            # Modules named by the user are refused, not skipped, when dead.
            stages, field = list(range(len(self._stages))), 'stage_modules'
        self.stage_ids = self._select(stages, place, field)
        self.place = place
        self.resolve_config(stages=self.stage_ids, place=place)

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
        if isinstance(stages, int) or not all(
                isinstance(s, int) and not isinstance(s, bool) for s in stages):
            raise TypeError(f'ProTune.stages must be a list of ints in [0, {num - 1}], '
                            f'got {stages!r}')
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
        cfg = self._method_cfg
        groups = cfg['groups']
        if branch:  # one groups for branches 18, 36, 72, 144 wide (HRNet-W18)
            groups = math.gcd(groups, channels)
        if channels % groups:
            raise ValueError(f'ProTune.groups={groups} must divide the width '
                             f'{channels} of stage {i} ({name})')
        hidden = max(groups, int(round(channels * cfg['hidden_ratio'] / groups))
                     * groups)
        return ProTuneBlock(channels, hidden, cfg['kernel_size'], groups,
                            cfg['se_ratio'], cfg['scale'], cfg['se_act'])


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
