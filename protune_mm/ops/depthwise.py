"""A same-size depthwise conv with a fast weight gradient on CPU."""
import torch
import torch.nn as nn
import torch.nn.functional as F


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
    CUDA, under autocast and under torch.compile it is the stock conv."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__(channels, channels, kernel_size, padding=kernel_size // 2,
                         groups=channels)

    def forward(self, x):
        if (x.device.type == 'cpu' and torch.is_grad_enabled()
                and self.weight.requires_grad
                and not torch.is_autocast_enabled('cpu')
                and not torch.compiler.is_compiling()):
            return _DepthwiseWeightGrad.apply(x, self.weight, self.bias, self.padding)
        return super().forward(x)
