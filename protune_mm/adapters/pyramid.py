"""Shared by the pyramid transformers with spatial-reduction attention (mmseg
MixVisionTransformer, mmdet PyramidVisionTransformer/V2, mmseg Twins PCPVT/SVT):
stages of blocks on (B, H*W, C) tokens, each called as ``block(x, hw_shape)``,
one stage per pyramid stage; attentions that reduce their keys/values
spatially (a strided conv on the token map, then a norm) before a
``torch.nn.MultiheadAttention``.

VPT: prompts go into the keys/values of every such attention
(``kv_sites``, ``methods/vpt/kv.py``), not into the token sequence. The
sequence must stay exactly the H*W grid: the key/value reduction, the
Mix-FFN / conditional position encoding (3x3 depthwise convs) and the window
attention of these backbones all reshape it to the map. A VPT-deep prompt
token prepended to a block's input only acts on the patch tokens through their
attention to its key and value (its own output is replaced by the next
block's prompts), so appending the block's prompts to the keys/values, through
the same norm as the other keys/values, is that mechanism; the prompts skip
the spatial reduction, which only applies to tokens on the grid.
"""
from typing import List, Optional, Sequence, Tuple

import torch.nn as nn

from .base import BackboneAdapter, KeyValueSite, Stage, reaching
from .swin import SwinAdapter


class PyramidAdapter(BackboneAdapter):
    """Subclasses say where the stages' blocks are (:meth:`stage_blocks`) and the
    patch size of the first patch embedding (VPT's prompt init)."""

    def stage_blocks(self) -> List[Tuple[str, Sequence[nn.Module]]]:
        """(name, blocks) of every pyramid stage, in order."""
        raise NotImplementedError

    def patch_size(self) -> Tuple[int, int]:
        raise NotImplementedError

    @property
    def last_out(self) -> int:
        return max(self.backbone.out_indices)

    def stages(self) -> List[Stage]:
        stages = []
        for i, (name, blocks) in enumerate(self.stage_blocks()):
            width = blocks[0].norm1.normalized_shape[0]
            stages.append(Stage(name, blocks[0], blocks[-1], width, width,
                                *reaching([i], self.last_out)))
        return stages

    # (B, H*W, C) tokens with hw_shape as the second argument, as Swin's stages.
    to_map = SwinAdapter.to_map
    from_map = SwinAdapter.from_map

    def kv_sites(self) -> List[KeyValueSite]:
        sites = []
        for i, (_, blocks) in enumerate(self.stage_blocks()):
            if i > self.last_out:  # run, but nothing returns them
                break
            for j, block in enumerate(blocks):
                norm = kv_norm(block)
                if norm is not None:
                    sites.append(KeyValueSite(
                        f'stage{i}_block{j}', block.attn.attn, norm,
                        block.norm1.normalized_shape[0], self.patch_size()))
        return sites


def kv_norm(block: nn.Module) -> Optional[nn.Module]:
    """The last norm of ``block``'s keys/values, or None if its attention is not a
    (spatial-reduction) ``torch.nn.MultiheadAttention``: the reduction's norm
    where keys/values are reduced, else the block's ``norm1``."""
    attn = getattr(block, 'attn', None)
    if not isinstance(getattr(attn, 'attn', None), nn.MultiheadAttention):
        return None
    return attn.norm if getattr(attn, 'sr_ratio', 1) > 1 else block.norm1
