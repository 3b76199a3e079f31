"""VPT pad prompts for any image backbone: learnable pixels on a border band of
width ``num_tokens`` of the input image. They act on the input alone, so they
need nothing from the backbone's adapter.

The official code enlarges the image instead; here the band is *replaced*, so
every feature map keeps exactly its size and alignment (boxes and masks stay where
they are). As in the official code the pixels are learned in [0, 1] RGB and
normalised with the ImageNet mean/std (``PAD_MEAN``/``PAD_STD``), i.e. the
normalisation of mmdet/mmseg's default data preprocessors.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .vpt import PromptHolder

# Normalisation of pad prompt pixels (ImageNet, [0, 1] RGB), as in the official
# code's prompt_norm; equal to mmdet/mmseg's default mean/std on 0-255 images.
PAD_MEAN = (0.485, 0.456, 0.406)
PAD_STD = (0.229, 0.224, 0.225)


def inject_pad_prompts(method) -> list:
    width, base = method.num_tokens, method.pad_base
    # Official init: uniform [0, 1) RGB pixels (normalised in the hook).
    method.prompts['pad_tb'] = PromptHolder(nn.Parameter(torch.rand(1, 3, 2 * width,
                                                                    base)))
    method.prompts['pad_lr'] = PromptHolder(nn.Parameter(torch.rand(1, 3, base,
                                                                    2 * width)))
    return [method.backbone.register_forward_pre_hook(_PadPromptHook(method, width))]


class _PadPromptHook:
    """Before the backbone: overwrite a border band of the image with prompt
    pixels."""

    def __init__(self, method, width: int):
        self.method, self.width = method, width

    def _pixels(self, name, size, like):
        """Prompt ``name`` (dropped out, ImageNet-normalised) resized to ``size``."""
        prompt = self.method.dropped(self.method.prompts[name], like)
        mean = prompt.new_tensor(PAD_MEAN).view(1, 3, 1, 1)
        std = prompt.new_tensor(PAD_STD).view(1, 3, 1, 1)
        prompt = (prompt - mean) / std
        if prompt.shape[-2:] != size:
            prompt = F.interpolate(prompt, size=size, mode='bilinear',
                                   align_corners=False)
        return prompt

    def __call__(self, module, args):
        if not self.method.prompts_enabled:
            return None
        x = args[0]
        b, c, h, w = x.shape
        p = self.width
        if c != 3 or h <= 2 * p or w <= 2 * p:
            raise ValueError(f'VPT pad prompts of width num_tokens={p} need RGB images '
                             f'larger than {2 * p}x{2 * p}, got {c}x{h}x{w}')
        tb = self._pixels('pad_tb', (2 * p, w), x)
        lr = self._pixels('pad_lr', (h - 2 * p, 2 * p), x)
        middle = torch.cat([lr[..., :p].expand(b, -1, -1, -1),
                            x[:, :, p:h - p, p:w - p],
                            lr[..., p:].expand(b, -1, -1, -1)], dim=3)
        x = torch.cat([tb[:, :, :p].expand(b, -1, -1, -1), middle,
                       tb[:, :, p:].expand(b, -1, -1, -1)], dim=2)
        return (x, ) + tuple(args[1:])
