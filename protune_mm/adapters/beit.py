"""mmseg BEiT, and MAE (a BEiT subclass, found over the MRO): the token layout
and layer loop of mmseg's VisionTransformer (see ``vit.py``), with a relative
position bias in every attention whose table is built for exactly
``[CLS, H*W patches]`` tokens.

To take prompt tokens, each ``BEiTAttention`` gets, on its instance only, a
forward that gives tokens beyond that count (VPT's prompts, after CLS) zero
relative position bias in their rows and columns: every token attends to the
prompts without position bias and the prompts attend to all tokens, as VPT's
official Swin code treats its prompts. With the stock token count the stock
forward runs, so Frozen and ProTune compute exactly the bare backbone.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..rebind import rebind_forward
from .base import register_adapter
from .vit import MMSegViTAdapter


@register_adapter('mmseg.models.backbones.beit.BEiT')
class BEiTAdapter(MMSegViTAdapter):
    family = 'BEiT'

    def attach(self) -> list:
        handles = super().attach()
        for layer in self.backbone.layers:
            handles.append(rebind_forward(
                layer.attn, ExtraTokenBEiTAttention(layer.attn, self.num_prefix_tokens)))
        return handles

    def block_sites(self):
        # BEiT layers scale each branch by a layer-scale parameter (gamma_1,
        # gamma_2) after the module's output, so no module's output is the branch
        # as it enters the stream; not described yet.
        return None


class ExtraTokenBEiTAttention:
    """``BEiTAttention.forward`` for a sequence with extra tokens after the first
    ``start`` (CLS) tokens; they get zero relative position bias."""

    def __init__(self, attn: nn.Module, start: int):
        self.attn, self.start = attn, start

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        m = self.attn
        wh, ww = m.window_size
        known = wh * ww + 1
        b, n, c = x.shape
        if n == known or m.relative_position_bias_table is None:
            return type(m).forward(m, x)
        # From here on mmseg's BEiTAttention.forward, but for the bias.
        if m.bias == 'qv_bias':
            k_bias = torch.zeros_like(m.v_bias, requires_grad=False)
            qkv = F.linear(x, m.qkv.weight, torch.cat((m.q_bias, k_bias, m.v_bias)))
        else:
            qkv = m.qkv(x)
        qkv = qkv.reshape(b, n, 3, m.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        bias = m.relative_position_bias_table[m.relative_position_index.view(-1)]
        bias = bias.view(known, known, -1).permute(2, 0, 1)  # (heads, known, known)
        extra = n - known
        keep = torch.cat([torch.arange(self.start, device=x.device),
                          torch.arange(self.start + extra, n, device=x.device)])
        full = bias.new_zeros(bias.shape[0], n, n)
        full[:, keep[:, None], keep] = bias
        x = F.scaled_dot_product_attention(
            q, k, v, attn_mask=full.unsqueeze(0).to(q.dtype), scale=m.scale,
            dropout_p=m.attn_drop.p if m.training else 0.0)
        x = x.transpose(1, 2).reshape(b, n, c)
        return m.proj_drop(m.proj(x))
