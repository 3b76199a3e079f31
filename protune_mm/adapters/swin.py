"""mmdet / mmseg SwinTransformer: stages are ``stages[i]`` on (B, H*W, C) tokens
with ``hw_shape`` passed as the second positional argument of every stage and
block call; every block's window attention can take prompt keys/values."""
from typing import List

import torch

from .base import (BackboneAdapter, BlockSite, Stage, WindowSite, reaching,
                   register_adapter)


@register_adapter('mmdet.models.backbones.swin.SwinTransformer',
                  'mmseg.models.backbones.swin.SwinTransformer')
class SwinAdapter(BackboneAdapter):
    family = 'SwinTransformer'
    # Frozen blocks hold most of what autograd saves (docs/benchmarks.md).
    recompute_by_default = True

    def stages(self) -> List[Stage]:
        # The stage output is that of its last block, before patch merging (what
        # mmdet/mmseg return for the stage).
        last_out = max(self.backbone.out_indices)
        stages = []
        for i, stage in enumerate(self.backbone.stages):
            width = stage.blocks[0].norm1.normalized_shape[0]
            stages.append(Stage(f'stages.{i}', stage, stage.blocks[-1], width, width,
                                *reaching([i], last_out)))
        return stages

    def to_map(self, x: torch.Tensor, args: tuple) -> torch.Tensor:
        b, n, c = x.shape
        h, w = args[1]
        return x.transpose(1, 2).reshape(b, c, h, w)

    def from_map(self, y: torch.Tensor, x: torch.Tensor, args: tuple) -> torch.Tensor:
        return y.flatten(2).transpose(1, 2)

    def window_sites(self) -> List[WindowSite]:
        swin = self.backbone
        patch_size = swin.patch_embed.projection.kernel_size
        last_out = max(swin.out_indices)
        sites = []
        for i, stage in enumerate(swin.stages):
            if i > last_out:  # mmdet/mmseg run these stages, but nothing returns them
                break
            width = stage.blocks[0].norm1.normalized_shape[0]
            for j, block in enumerate(stage.blocks):
                sites.append(WindowSite(f'stage{i}_block{j}', block.attn.w_msa,
                                        block.norm1, width, patch_size))
        return sites

    def block_sites(self) -> List[BlockSite]:
        # SwinBlock: x = x + attn(norm1(x), hw_shape); x = ffn(norm2(x), identity=x).
        last_out = max(self.backbone.out_indices)
        sites = []
        for i, stage in enumerate(self.backbone.stages):
            width = stage.blocks[0].norm1.normalized_shape[0]
            for j, block in enumerate(stage.blocks):
                sites.append(BlockSite(f'stages.{i}.blocks.{j}', block, block.attn,
                                       block.ffn, block.attn, block.ffn, False, True,
                                       width, i <= last_out))
        return sites
