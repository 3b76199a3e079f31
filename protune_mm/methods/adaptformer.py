"""AdaptFormer (Chen et al., "AdaptFormer: Adapting Vision Transformers for
Scalable Visual Recognition", NeurIPS 2022, arXiv 2205.13535): a trainable
bottleneck MLP beside each transformer block's frozen MLP (paper Eq. 2-3):

    x' = x + Attn(LN1(x)),  h = LN2(x'),
    x_out = x' + MLP(h) + s * (ReLU(h W_down + b_down) W_up + b_up).

The frozen blocks are not replaced: forward hooks read the MLP's input ``h`` and
add the scaled adapter to the MLP branch where it enters the residual stream, so
the inner backbone's module tree and state-dict keys stay stock. The adapters
live in ``self.prompts``, where checkpoints and packs find every method's
trainable tensors.
"""
import dataclasses
import math
from typing import ClassVar, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..adapters.base import BlockSite
from ..registry import MODELS
from .base import PromptMethod
from .blocks import BlockMethodConfig, select_blocks, transformer_sites


@dataclasses.dataclass
class AdaptFormerConfig(BlockMethodConfig):
    """The options of :class:`AdaptFormer` (documented there)."""
    owner: ClassVar[str] = 'AdaptFormer'

    bottleneck: int = 64
    scale: float = 0.1

    def validate(self) -> None:
        super().validate()
        self.check_int('bottleneck', 1)
        self.check_positive('scale')


class Bottleneck(nn.Module):
    """``h -> up(dropout(relu(down(h))))``, initialised as the official code's
    'lora' init (``adapter.py`` of ShoufaChen/AdaptFormer): ``down`` Kaiming-uniform
    (a=sqrt(5)), ``up`` and both biases zero, so the adapter starts at exactly
    zero and ``down`` gets gradient once ``up`` has moved."""

    def __init__(self, width: int, bottleneck: int, dropout: float):
        super().__init__()
        self.down = nn.Linear(width, bottleneck)
        self.up = nn.Linear(bottleneck, width)
        self.dropout = nn.Dropout(dropout)
        with torch.no_grad():
            nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
            nn.init.zeros_(self.down.bias)
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.up(self.dropout(F.relu(self.down(h))))


@MODELS.register_module()
class AdaptFormer(PromptMethod):
    """AdaptFormer: a parallel bottleneck adapter beside the frozen MLP of each
    transformer block.

    Where: the blocks the backbone's adapter describes (``block_sites``: TimmViT,
    mmseg VisionTransformer, mmdet/mmseg SwinTransformer). Other families are
    refused. The adapter reads the MLP's input (``LN2(x')``) and its scaled
    output joins the MLP branch where that enters the residual stream: after
    any layer scale of the branch (timm's ``ls2``), so the layer scale does not
    scale the adapter, as in the paper's Eq. 3.

    Args:
        backbone (dict): inner backbone config (see :class:`PromptMethod`).
        bottleneck (int): the adapter's hidden width. Default 64 (the paper's
            default for ViT-B).
        scale (float): the paper's ``s``, multiplying the adapter's output.
            Default 0.1 (the paper's).
        dropout (float): dropout on the adapter's hidden activation in training,
            in [0, 1). Default 0 (the official code's ``Adapter`` class default;
            its ViT blocks pass 0.1). Training-only.
        blocks (Sequence[int], optional): indices of the blocks (in forward
            order over all stages) that get adapters; default every block that
            reaches a returned feature (later ones are skipped and logged). A
            block that reaches none is refused.
        pretrained, init_cfg, memory_efficient: see :class:`PromptMethod`.
    """
    method = 'adaptformer'
    config_class = AdaptFormerConfig
    identity_at_init = True  # up starts at zero

    def resolve(self, config: AdaptFormerConfig) -> AdaptFormerConfig:
        sites = self._sites = transformer_sites(self)
        blocks = select_blocks(sites, config.blocks, 'AdaptFormer', self.skipped)
        return dataclasses.replace(config, scale=float(config.scale),
                                   dropout=float(config.dropout), blocks=blocks)

    def inject(self) -> list:
        cfg = self.config
        handles = []
        for i in cfg.blocks:
            site = self._sites[i]
            key = site.name.replace('.', '_')
            self.prompts[key] = Bottleneck(site.width, cfg.bottleneck, cfg.dropout)
            hook = _Adapter(self, key, site)
            handles.append(site.mlp.register_forward_hook(hook.on_mlp))
            if site.mlp_out is not site.mlp:
                handles.append(site.mlp_out.register_forward_hook(hook.on_mlp_out))
        return handles

    def report_notes(self) -> List[str]:
        return [f'bottleneck-{self.config.bottleneck} adapters beside the MLP of '
                f'{len(self.prompts)} blocks (two small matmuls each)']

    def extra_repr(self) -> str:
        return f'{super().extra_repr()}, {len(self.prompts)} adapted blocks'


class _Adapter:
    """The hooks of one block: on the MLP, ``s * adapter(h)`` from its input
    ``h``; added to the MLP's output if that is where the branch enters the
    stream, else held until the ``mlp_out`` module's output (timm's ``ls2``) and
    added there. Nothing is held past the block's call."""

    def __init__(self, method: AdaptFormer, key: str, site: BlockSite):
        self.method, self.key = method, key
        self.direct = site.mlp_out is site.mlp
        self._held: Optional[torch.Tensor] = None

    def on_mlp(self, module, args, output):
        m = self.method
        if not m.prompts_enabled:
            return None
        h = args[0]
        delta = (m.prompts[self.key](h) * m.config.scale).to(output.dtype)
        if self.direct:
            return output + delta
        self._held = delta
        return None

    def on_mlp_out(self, module, args, output):
        delta, self._held = self._held, None
        if delta is None or not self.method.prompts_enabled:
            return None
        return output + delta
