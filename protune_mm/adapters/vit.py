"""mmseg VisionTransformer (SETR, UPerNet-ViT, Segmenter, DPT): (B, N, C) tokens,
``[CLS, patches]`` (or patches alone with ``with_cls_token=False``), 12 or 24
``layers`` called as ``layer(x)``.

Stages are block groups as for TimmViT; the token grid of the current call is
captured from the patch embedding's ``(x, hw_shape)`` output.

Token prompts (VPT, after CLS, before the patches) meet one obstacle: after each
layer of ``out_indices`` mmseg's forward reshapes ``x[:, 1:]`` to the grid, which
fails with extra tokens. So the adapter takes any tokens beyond ``prefix + H*W``
out of that layer's output and gives them back at the input of the next layer
(VPT-deep then replaces them with that layer's prompts; VPT-shallow carries them
on); after the last returned layer they are dropped (later layers reach no
output). The carried tokens live on the adapter for one call only, like the grid:
both are reset by every patch embedding call, nothing is stored on the backbone.
Without extra tokens (Frozen, ProTune) these hooks change nothing.
"""
from typing import List

import torch

from .base import BlockSite, Stage, TokenSites, reaching, register_adapter
from .timm_vit import TimmViTAdapter, vit_block_groups


@register_adapter('mmseg.models.backbones.vit.VisionTransformer')
class MMSegViTAdapter(TimmViTAdapter):
    family = 'VisionTransformer'
    #: block groups seen as stages by ProTune (as TimmViT's default).
    num_stages = 4

    def __init__(self, backbone):
        super().__init__(backbone)
        self._carried = None

    @property
    def num_prefix_tokens(self) -> int:
        return int(getattr(self.backbone, 'with_cls_token', True))

    def out_layers(self) -> List[int]:
        # mmseg tests ``i in out_indices``: other entries return nothing.
        depth = len(self.backbone.layers)
        return sorted({i for i in self.backbone.out_indices if 0 <= i < depth})

    @property
    def last_out(self) -> int:
        return max(self.out_layers(), default=-1)

    def attach(self) -> list:
        layers = self.backbone.layers
        handles = [self.backbone.patch_embed.register_forward_hook(self._capture_grid)]
        for i in self.out_layers():
            handles.append(layers[i].register_forward_hook(self._take_extra))
            if i < self.last_out:
                handles.append(layers[i + 1].register_forward_pre_hook(self._give_back))
        return handles

    def _capture_grid(self, module, args, output):
        # mmseg's PatchEmbed returns (tokens, (H, W)).
        self._grid = tuple(output[1])
        self._carried = None

    def _take_extra(self, module, args, output):
        h, w = self._grid
        start = self.num_prefix_tokens
        extra = output.shape[1] - start - h * w
        if extra == 0:
            return None
        self._carried = output[:, start:start + extra]
        return torch.cat([output[:, :start], output[:, start + extra:]], dim=1)

    def _give_back(self, module, args):
        if self._carried is None:
            return None
        x, start = args[0], self.num_prefix_tokens
        x = torch.cat([x[:, :start], self._carried, x[:, start:]], dim=1)
        self._carried = None
        return (x, ) + tuple(args[1:])

    def stages(self) -> List[Stage]:
        layers = self.backbone.layers
        groups = vit_block_groups(len(layers), min(self.num_stages, len(layers)))
        width = self.backbone.cls_token.shape[-1]
        return [Stage(f'layers.{g[0]}-{g[-1]}', layers[g[0]], layers[g[-1]], width,
                      width, *reaching(g, self.last_out)) for g in groups]

    def token_sites(self) -> TokenSites:
        vit = self.backbone
        patch = vit.patch_embed.projection.kernel_size
        return TokenSites(vit.layers, self.num_prefix_tokens, vit.cls_token.shape[-1],
                          tuple(patch), self.last_out + 1)

    def block_sites(self) -> List[BlockSite]:
        # mmseg TransformerEncoderLayer: x = attn(norm1(x), identity=x);
        # x = ffn(norm2(x), identity=x): both outputs include the stream.
        width = self.backbone.cls_token.shape[-1]
        return [BlockSite(f'layers.{i}', layer, layer.attn, layer.ffn, layer.attn,
                          layer.ffn, True, True, width, i <= self.last_out)
                for i, layer in enumerate(self.backbone.layers)]
