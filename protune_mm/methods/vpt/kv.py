"""VPT key/value prompts: VPT-deep for attentions that reduce their keys/values
spatially (pyramid transformers: SegFormer's MiT, PVT/PVTv2, Twins).

Every attention site the adapter names gets its own ``num_tokens x C`` prompts,
joined to its keys and values (after the norm the other keys/values went
through) by a forward pre-hook on its ``torch.nn.MultiheadAttention``: every
patch token attends to the prompts. This is VPT-deep's effect on the patch
tokens: a prompt token prepended to a block's input reaches them only through
its key and value, and its own output is replaced by the next block's prompts
(the pyramid adapter says why the prompts cannot join the token sequence of
these backbones). Nothing inside the backbone is replaced or re-parented.
"""
import torch
import torch.nn as nn

from .common import DeepOnly


class KeyValuePrompts(DeepOnly):
    name, capability = 'kv', 'kv_sites'
    shallow_refusal = ('VPT.deep must be True for spatial-reduction attention backbones '
                       '({backbone}: own key/value prompts in every block); VPT-shallow '
                       'is not supported there, got deep=False')

    def attach(self, site, method):
        return site.attn.register_forward_pre_hook(
            _KeyValuePromptHook(method, site.name, site.norm), with_kwargs=True)


class _KeyValuePromptHook:
    """Before a ``torch.nn.MultiheadAttention``: prepend the normalised prompts
    to its ``key`` and ``value``."""

    def __init__(self, method, key: str, norm: nn.Module):
        self.method, self.key, self.norm = method, key, norm

    def __call__(self, module, args, kwargs):
        if not self.method.prompts_enabled:
            return None
        names = ('query', 'key', 'value')
        call = dict(zip(names, args), **kwargs)
        for mask in ('key_padding_mask', 'attn_mask'):
            if call.get(mask) is not None:
                raise ValueError(f'VPT key/value prompts: the attention was given a '
                                 f'{mask}, which does not cover the prompts')
        key, value = call['key'], call['value']
        prompt = self.norm(self.method.dropped(self.method.prompts[self.key], key))
        if module.batch_first:  # keys (B, L, C)
            prompt, dim = prompt.expand(key.shape[0], -1, -1), 1
        else:  # keys (L, B, C)
            prompt, dim = prompt.transpose(0, 1).expand(-1, key.shape[1], -1), 0
        call['key'] = torch.cat([prompt, key], dim=dim)
        call['value'] = torch.cat([prompt, value], dim=dim)
        return (), call
