"""Pro-tuning (Nie et al., "Pro-tuning: Unified Prompt Tuning for Vision Tasks",
arXiv 2207.14381): input-dependent prompt blocks inserted stage by stage into a
frozen backbone."""
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import MODELS
from .stages import describe_stages, map_apply
from .wrapper import FrozenBackboneWrapper


class SqueezeExcite(nn.Module):
    """Channel gating; the gate multiplies its input.

    The reduced width is at least 8 (timm's SE rounds the same way): with only one
    or two ReLU units a narrow block's gate often starts dead and never trains.
    """

    def __init__(self, channels: int, ratio: int):
        super().__init__()
        hidden = max(8, channels // ratio)
        self.reduce = nn.Conv2d(channels, hidden, 1)
        self.expand = nn.Conv2d(hidden, channels, 1)

    def forward(self, x):
        gate = x.mean((2, 3), keepdim=True)
        gate = self.expand(torch.relu(self.reduce(gate)))
        return x * torch.sigmoid(gate)


class _DepthwiseWeightGrad(torch.autograd.Function):
    """Stride-1 depthwise conv whose weight gradient is computed as a forward
    depthwise conv, with the output gradient as the kernel.

    On CPU, aten's depthwise weight gradient is the hot spot of a Pro-tuning step:
    6-14x the cost of the forward conv and 3-8x slower than this formulation,
    measured at the four ResNet-50 block shapes (batch 2 at 320 px, 2 threads).
    The input gradient and the outputs are the stock ones.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, padding):
        ctx.save_for_backward(x, weight)
        ctx.padding = padding
        return F.conv2d(x, weight, bias, 1, padding, 1, weight.shape[0])

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        (ph, pw), (n, c, h, w) = ctx.padding, x.shape
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad, x, weight, None, (1, 1), (ph, pw), (1, 1), False, (0, 0), c,
                (True, False, False))[0]
        if ctx.needs_input_grad[1]:
            # grad_w[c, i, j] = sum_{n,y,x} x_pad[n, c, y+i, x+j] * grad[n, c, y, x]:
            # a depthwise conv over the n*c maps with each map's gradient as kernel.
            xp = F.pad(x, (pw, pw, ph, ph)).reshape(1, n * c, h + 2 * ph, w + 2 * pw)
            grad_w = F.conv2d(xp, grad.reshape(n * c, 1, h, w), groups=n * c)
            grad_w = grad_w.reshape(n, c, 1, *weight.shape[2:]).sum(0)
        if ctx.needs_input_grad[2]:
            grad_b = grad.sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None


class DepthwiseConv2d(nn.Conv2d):
    """Same-size, stride-1 depthwise ``nn.Conv2d`` (same parameters and keys)
    with a fast weight gradient on CPU (see :class:`_DepthwiseWeightGrad`); on
    CUDA and under autocast it is the stock conv."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__(channels, channels, kernel_size, padding=kernel_size // 2,
                         groups=channels)

    def forward(self, x):
        if (x.device.type == 'cpu' and torch.is_grad_enabled()
                and self.weight.requires_grad
                and not torch.is_autocast_enabled('cpu')):
            return _DepthwiseWeightGrad.apply(x, self.weight, self.bias, self.padding)
        return super().forward(x)


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
    """

    def __init__(self, channels: int, hidden: int, kernel_size: int = 5,
                 groups: int = 4, se_ratio: int = 16, scale: str = 'channel'):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, groups=groups),
            DepthwiseConv2d(hidden, kernel_size),
            nn.Conv2d(hidden, hidden, 1),
            SqueezeExcite(hidden, se_ratio),
            nn.Conv2d(hidden, channels, 1, groups=groups),
        )
        shape = (1, channels, 1, 1) if scale == 'channel' else (1, )
        self.scale = nn.Parameter(torch.zeros(shape))

    def forward(self, x):
        return x + self.scale * self.body(x)


@MODELS.register_module()
class ProTune(FrozenBackboneWrapper):
    """Pro-tuning around a frozen ResNet-family, Swin or :class:`TimmViT` backbone.

    Args:
        backbone (dict): inner backbone config (see :class:`FrozenBackboneWrapper`).
        stages (Sequence[int], optional): indices of the stages that get a prompt
            block; default all. Stages are described in ``stages.py`` (ViT: its
            blocks in ``num_stages`` equal groups).
        place (str): 'input' (default; the block acts on the stage input) or
            'output' (on the stage output, before any downsampling).
        hidden_ratio (float): block width as a fraction of the stage width. 0.5
            keeps Pro-tuning R50 at 3.25% of the backbone parameters (asserted
            <= 5% in tests/test_protune.py); full width (1.0) gives 9.79%.
        kernel_size (int): depthwise kernel size, odd. Default 5.
        groups (int): groups of the outer 1x1 convs. Default 4.
        se_ratio (int): squeeze-excite reduction. Default 16.
        scale (str): 'channel' or 'scalar' learnable output scale (init 0).
        pretrained (str, optional): checkpoint of the inner backbone (see
            :class:`FrozenBackboneWrapper`).
    """
    method = 'protune'

    def __init__(self, backbone: dict, stages: Optional[Sequence[int]] = None,
                 place: str = 'input', hidden_ratio: float = 0.5,
                 kernel_size: int = 5, groups: int = 4, se_ratio: int = 16,
                 scale: str = 'channel', pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None, memory_efficient: bool = False):
        # Cheap checks first, so a bad config fails before the backbone is built.
        if place not in ('input', 'output'):
            raise ValueError(f"ProTune.place must be 'input' or 'output', got {place!r}")
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
        if scale not in ('channel', 'scalar'):
            raise ValueError(f"ProTune.scale must be 'channel' or 'scalar', got {scale!r}")
        super().__init__(backbone, pretrained=pretrained, init_cfg=init_cfg,
                         memory_efficient=memory_efficient)
        all_stages = describe_stages(self.backbone, 'ProTune')
        if stages is None:
            stages = list(range(len(all_stages)))
        stages = _check_stages(stages, len(all_stages))
        self._cfg = dict(stages=stages, place=place, hidden_ratio=hidden_ratio,
                         kernel_size=kernel_size, groups=groups, se_ratio=se_ratio,
                         scale=scale)

        for i in stages:
            stage = all_stages[i]
            channels = stage.in_channels if place == 'input' else stage.out_channels
            if channels % groups:
                raise ValueError(f'ProTune.groups={groups} must divide the width '
                                 f'{channels} of stage {i} ({stage.name})')
            hidden = max(groups, int(round(channels * hidden_ratio / groups)) * groups)
            block = ProTuneBlock(channels, hidden, kernel_size, groups, se_ratio, scale)
            self.prompts[str(i)] = block
            hook = _StagePrompt(block, stage.layout, self.backbone)
            if place == 'input':
                stage.first.register_forward_pre_hook(hook.on_input)
            else:
                stage.last.register_forward_hook(hook.on_output)

    def method_config(self) -> dict:
        return dict(self._cfg)


class _StagePrompt:
    """Forward hooks that add a prompt block's output to a stage's feature."""

    def __init__(self, block: nn.Module, layout: str, backbone: nn.Module):
        self.block, self.layout, self.backbone = block, layout, backbone

    def _hw(self, args):
        if self.layout == 'swin':
            return args[1]
        if self.layout == 'vit':
            return self.backbone.grid_shape
        return None

    def on_input(self, module, args):
        x = map_apply(self.layout, args[0], self._hw(args), self.block)
        return (x, ) + tuple(args[1:])

    def on_output(self, module, args, output):
        return map_apply(self.layout, output, self._hw(args), self.block)


def _check_stages(stages, num: int) -> list:
    if isinstance(stages, int) or not all(isinstance(s, int) for s in stages):
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
    return stages
