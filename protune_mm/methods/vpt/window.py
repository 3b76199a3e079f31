"""VPT window prompts: VPT-deep for window attention (mmdet / mmseg Swin).

Follows the official VPT code (KMnP/vpt, ``src/models/vit_prompt/swin_transformer.py``,
``PromptedSwinTransformerBlock`` / ``PromptedWindowAttention``): every block ``j`` of
stage ``i`` has its own ``num_tokens x C_i`` prompts. They go through the block's
``norm1`` like the other tokens and the same prompts are joined to the tokens of
every (shifted) local window; the relative-position bias and the shifted-window
mask get zero rows/columns for them, i.e. every window token may attend to every
prompt, without position bias.

How it hooks in: the ``forward`` of each window attention the adapter names
(Swin: each block's frozen ``attn.w_msa``, a ``WindowMSA``) is replaced, on that
instance only (``protune_mm.rebind``), by a :class:`PromptedWindowMSA` object. Why this rather than the alternatives:

- no module is added, renamed or re-parented inside the backbone, so its
  state-dict keys (and pretrained Swin checkpoints, prompt packs) are unchanged
  and no key remapping is needed (unlike a LoRA-style wrapper module);
- ``ShiftWindowMSA`` keeps doing the padding, cyclic shift, mask building and
  window partition/merge with its own code; only the attention inside a window
  changes, and mmdet's and mmseg's ``WindowMSA`` share the attributes used here;
- it is a plain module-level class holding module references (no lambdas, no
  classes created at run time), so the model deep-copies and pickles; swapping
  ``__class__`` instead would need one subclass per library made at run time,
  which pickle cannot find.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ...rebind import rebind_forward
from .common import DeepOnly


class WindowPrompts(DeepOnly):
    """Prompts ``(1, num_tokens, C)`` for every window site (Swin:
    ``stage{i}_block{j}``), initialised uniform(-v, v) with ``v =
    vpt_init_bound(patch_size, C)`` (``C`` the width of the stage; the official
    code uses the stage-0 width for every stage, a slightly wider init for the
    later, wider stages).

    VPT-shallow is refused: in the official code shallow Swin prompts are carried
    through every block *and* every patch merging, which would need the whole
    backbone forward rewritten.
    """
    name, capability = 'window', 'window_sites'
    shallow_refusal = ('VPT.deep must be True for window-attention backbones (Swin: '
                       'VPT-deep, own prompts in every block); VPT-shallow is not '
                       'supported there, got deep=False')

    def attach(self, site, method):
        return rebind_forward(site.attn, PromptedWindowMSA(site.attn, site.norm,
                                                           method, site.name))


class PromptedWindowMSA:
    """Window attention of a frozen ``WindowMSA`` whose keys/values also contain
    the block's prompts (called as ``w_msa(windows, mask=mask)``).

    The official code also computes the prompts' own outputs (averaged over the
    windows). With VPT-deep those outputs are replaced by the next block's prompts
    and never reach a patch token or a stage output (mmdet/mmseg take stage outputs
    before patch merging, and merging only sees patch tokens), while a patch
    token's output only depends on its own row of the attention. So only the patch
    tokens are used as queries, against ``[prompt keys/values; window
    keys/values]``: the same patch-token outputs, without the ``num_tokens`` extra
    query rows.

    Args:
        attn: the frozen ``WindowMSA`` (its qkv, relative position bias, proj...).
        norm: the block's ``norm1`` (prompts are normalised like the tokens).
        method: the VPT method (its prompts, dropout, enabled switch).
        key: the block's key in ``method.prompts``.
    """

    def __init__(self, attn: nn.Module, norm: nn.Module, method, key: str):
        self.attn, self.norm, self.method, self.key = attn, norm, method, key

    def __call__(self, x: torch.Tensor, mask=None) -> torch.Tensor:
        m = self.attn
        if not self.method.prompts_enabled:
            return type(m).forward(m, x, mask=mask)
        bw, n, c = x.shape  # (num_windows * B, Wh * Ww, C)
        heads = m.num_heads
        qkv = m.qkv(x).reshape(bw, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (bw, heads, n, head_dim)

        prompt = self.norm(self.method.dropped(self.method.prompts[self.key], x))
        p = prompt.shape[1]
        pkv = m.qkv(prompt).reshape(p, 3, heads, c // heads).permute(1, 2, 0, 3)
        # The same prompts for every window of every image.
        k = torch.cat([pkv[1].expand(bw, -1, -1, -1), k], dim=2)
        v = torch.cat([pkv[2].expand(bw, -1, -1, -1), v], dim=2)

        bias = m.relative_position_bias_table[m.relative_position_index.view(-1)]
        bias = bias.view(n, n, -1).permute(2, 0, 1)  # (heads, n, n)
        # Zero bias and zero mask for the prompt columns: every token sees every
        # prompt, with no position bias.
        bias = F.pad(bias, (p, 0)).unsqueeze(0)  # (1, heads, n, p + n)
        if mask is not None:
            nw = mask.shape[0]
            bias = (bias.unsqueeze(0) + F.pad(mask, (p, 0)).unsqueeze(1).unsqueeze(0)
                    ).expand(bw // nw, -1, -1, -1, -1).reshape(bw, heads, n, p + n)
        x = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias.to(q.dtype), scale=m.scale,
            dropout_p=m.attn_drop.p if m.training else 0.0)
        x = x.transpose(1, 2).reshape(bw, n, c)
        return m.proj_drop(m.proj(x))
