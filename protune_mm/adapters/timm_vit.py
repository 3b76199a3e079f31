"""protune_mm's TimmViT (a timm VisionTransformer): (B, N, C) tokens whose last
H*W are patch tokens. Its blocks form ``num_stages`` equal groups of "stages";
the token grid (H, W) of the current call is captured by this adapter from the
patch embedding's output, so the backbone keeps no per-forward state."""
from typing import List, Optional, Tuple

import torch

from .base import (BackboneAdapter, BlockSite, Stage, TokenSites, reaching,
                   register_adapter)


def vit_block_groups(depth: int, num_groups: int) -> List[List[int]]:
    """Split ``range(depth)`` into ``num_groups`` contiguous groups, as equal as
    possible (earlier groups get the remainder)."""
    if not 1 <= num_groups <= depth:
        raise ValueError(f'num_stages must be in [1, {depth}] (the ViT depth), '
                         f'got {num_groups}')
    base, extra = divmod(depth, num_groups)
    groups, start = [], 0
    for g in range(num_groups):
        size = base + (g < extra)
        groups.append(list(range(start, start + size)))
        start += size
    return groups


@register_adapter('protune_mm.backbones.timm_vit.TimmViT')
class TimmViTAdapter(BackboneAdapter):
    family = 'TimmViT'
    # Frozen blocks hold most of what autograd saves (docs/benchmarks.md).
    recompute_by_default = True
    # On each group's output, next to the features the neck reads: in the
    # transfer study's ViT better than the input in 14 of 15 seeds over two
    # pre-training runs, one tie (docs/transfer_study.md).
    protune_place = 'output'

    def __init__(self, backbone):
        super().__init__(backbone)
        self._grid: Optional[Tuple[int, int]] = None

    def attach(self) -> list:
        return [self.backbone.patch_embed.register_forward_hook(self._capture_grid)]

    def _capture_grid(self, module, args, output):
        # patch_embed returns (B, H, W, C) with dynamic_img_size.
        self._grid = (output.shape[1], output.shape[2])

    def stages(self) -> List[Stage]:
        vit = self.backbone
        groups = vit_block_groups(len(vit.blocks), vit.num_stages)
        last_out = max(vit.out_indices)
        return [Stage(f'blocks.{g[0]}-{g[-1]}', vit.blocks[g[0]], vit.blocks[g[-1]],
                      vit.embed_dim, vit.embed_dim, *reaching(g, last_out))
                for g in groups]

    def to_map(self, x: torch.Tensor, args: tuple) -> torch.Tensor:
        h, w = self._grid
        b, n, c = x.shape
        return x[:, n - h * w:].transpose(1, 2).reshape(b, c, h, w)

    def from_map(self, y: torch.Tensor, x: torch.Tensor, args: tuple) -> torch.Tensor:
        # CLS/register/prompt tokens in front pass unchanged.
        h, w = self._grid
        return torch.cat([x[:, :x.shape[1] - h * w], y.flatten(2).transpose(1, 2)], 1)

    def token_sites(self) -> TokenSites:
        vit = self.backbone
        return TokenSites(vit.blocks, vit.num_prefix_tokens, vit.embed_dim,
                          vit.patch_size, max(vit.out_indices) + 1)

    def block_sites(self) -> List[BlockSite]:
        # timm Block: x = x + ls1(attn(norm1(x))); x = x + ls2(mlp(norm2(x)))
        # (drop_path is the identity in eval, where the frozen blocks stay).
        vit = self.backbone
        last_out = max(vit.out_indices)
        return [BlockSite(f'blocks.{i}', b, b.attn, b.mlp, b.ls1, b.ls2, False, False,
                          vit.embed_dim, i <= last_out)
                for i, b in enumerate(vit.blocks)]
