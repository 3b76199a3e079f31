"""VPT token prompts for token backbones (TimmViT): inserted after the prefix
(CLS/register) tokens at the input of the first block, and with VPT-deep
replaced by each later block's own prompts."""
import torch
import torch.nn as nn

from .vpt import PromptHolder, vpt_init_bound


def inject_token_prompts(method) -> list:
    sites = method.adapter.token_sites()
    bound = vpt_init_bound(sites.patch_size, sites.embed_dim)
    depth = len(sites.blocks)
    layers = sites.num_reaching if method.deep else 1
    if method.deep and layers < depth:
        method.skipped[f'blocks {layers}-{depth - 1}'] = (
            'after the last block the backbone returns (out_indices)')
    handles = []
    for i in range(layers):
        p = nn.Parameter(torch.empty(1, method.num_tokens, sites.embed_dim))
        nn.init.uniform_(p, -bound, bound)
        method.prompts[f'block{i}'] = PromptHolder(p)
        hook = _TokenPromptHook(method, f'block{i}', sites.num_prefix_tokens,
                                insert=(i == 0))
        handles.append(sites.blocks[i].register_forward_pre_hook(hook))
    return handles


class _TokenPromptHook:
    """Before a block: insert (first block) or replace (deep) the prompt tokens,
    which sit right after the backbone's prefix (CLS/register) tokens."""

    def __init__(self, method, key: str, start: int, insert: bool):
        self.method, self.key, self.start, self.insert = method, key, start, insert

    def __call__(self, module, args):
        if not self.method.prompts_enabled:
            return None
        x, start = args[0], self.start
        p = self.method.dropped(self.method.prompts[self.key], x)
        p = p.expand(x.shape[0], -1, -1)
        end = start if self.insert else start + p.shape[1]
        return (torch.cat([x[:, :start], p, x[:, end:]], dim=1), ) + tuple(args[1:])
