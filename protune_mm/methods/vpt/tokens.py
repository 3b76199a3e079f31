"""VPT token prompts for token backbones (TimmViT, mmseg ViT/BEiT/MAE): inserted
after the prefix (CLS/register) tokens at the input of the first block, after the
position embedding (they get none), and with VPT-deep replaced by each later
block's own prompts, up to the last block whose output the backbone returns."""
import torch

from .common import Built, Mechanism, PromptHolder, uniform_prompt


class TokenPrompts(Mechanism):
    name, capability = 'tokens', 'token_sites'

    def describe(self) -> str:
        return f'token prompts before blocks 0-{self.sites.num_reaching - 1}'

    def build(self, config, method) -> Built:
        sites = self.sites
        depth = len(sites.blocks)
        layers = sites.num_reaching if config.deep else 1
        skipped = {}
        if config.deep and layers < depth:
            skipped[f'blocks {layers}-{depth - 1}'] = (
                'after the last block the backbone returns (out_indices)')
        prompts, handles = {}, []
        for i in range(layers):
            prompts[f'block{i}'] = PromptHolder(
                uniform_prompt(config.num_tokens, sites.embed_dim, sites.patch_size))
            hook = _TokenPromptHook(method, f'block{i}', sites.num_prefix_tokens,
                                    insert=(i == 0))
            handles.append(sites.blocks[i].register_forward_pre_hook(hook))
        return Built(prompts, handles, skipped)


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
