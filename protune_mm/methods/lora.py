"""LoRA (Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", ICLR
2022, arXiv 2106.09685): a trainable low-rank update ``B @ A * alpha / rank`` of
chosen frozen linear layers of each transformer block.

The frozen layers are not replaced: a forward hook adds ``B(A(dropout(x))) *
scale`` to each target linear's output, so the inner backbone's module tree and
state-dict keys stay stock. ``A`` and ``B`` live in ``self.prompts``, where
checkpoints and packs find every method's trainable tensors.
"""
import copy
import dataclasses
import math
from typing import ClassVar, Dict, List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..adapters.base import BlockSite
from ..rebind import rebind_forward
from ..registry import MODELS
from .base import PromptMethod
from .blocks import BlockMethodConfig, select_blocks, transformer_sites

#: target names: the attention's input projection (q, k and v in one matrix in
#: every supported family) and output projection, the MLP's two linear layers.
TARGETS = ('qkv', 'proj', 'fc1', 'fc2')


@dataclasses.dataclass
class LoRAConfig(BlockMethodConfig):
    """The options of :class:`LoRA` (documented there)."""
    owner: ClassVar[str] = 'LoRA'

    rank: int = 8
    alpha: float = 8.0
    targets: Sequence[str] = ('qkv', )

    def validate(self) -> None:
        super().validate()
        self.check_int('rank', 1)
        self.check_positive('alpha')
        t = self.targets
        if (isinstance(t, str) or not isinstance(t, (list, tuple)) or not t
                or not all(n in TARGETS for n in t)):
            self.fail('targets', f'a non-empty list of names among {list(TARGETS)}')


class LowRankUpdate(nn.Module):
    """``x -> B(A(x)) * scale`` with ``A`` (rank, in) and ``B`` (out, rank),
    initialised as in the LoRA paper and peft: ``A`` Kaiming-uniform (a=sqrt(5),
    ``nn.Linear``'s init), ``B`` zeros, so the update starts at exactly zero and
    ``A`` gets gradient once ``B`` has moved."""

    def __init__(self, in_features: int, out_features: int, rank: int, scale: float):
        super().__init__()
        self.A = nn.Parameter(torch.empty(rank, in_features))
        self.B = nn.Parameter(torch.zeros(out_features, rank))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.linear(x, self.A), self.B) * self.scale

    def delta_weight(self) -> torch.Tensor:
        """The update as a weight: ``B @ A * scale`` (out, in)."""
        return (self.B @ self.A) * self.scale

    def extra_repr(self) -> str:
        return f'in={self.A.shape[1]}, out={self.B.shape[0]}, rank={self.A.shape[0]}'


# -- where the targets are -------------------------------------------------------------
def block_layers(site: BlockSite) -> Dict[str, Tuple[nn.Module, str]]:
    """``{target: (module, weight name)}`` of the target layers one block has.

    - attention: a ``torch.nn.MultiheadAttention`` (mmcv's attention, in mmseg's
      ViT) has ``qkv`` = its ``in_proj_weight`` and ``proj`` = ``out_proj.weight``;
      otherwise ``qkv`` / ``proj`` are the ``nn.Linear`` modules of those names
      (timm's ``Attention``, Swin's ``WindowMSA``).
    - MLP: ``fc1`` / ``fc2`` are its first and last of exactly two ``nn.Linear``
      (timm's ``Mlp`` fc1/fc2, mmcv's ``FFN`` layers.0.0/layers.1); gated MLPs
      with more linear layers have neither.
    """
    found = {}
    mha = [m for m in site.attn.modules() if isinstance(m, nn.MultiheadAttention)]
    if mha:
        if mha[0]._qkv_same_embed_dim:  # one (3C, C) matrix, as in every ViT here
            found['qkv'] = (mha[0], 'in_proj_weight')
        found['proj'] = (mha[0], 'out_proj.weight')
    else:
        for name, m in site.attn.named_modules():
            last = name.rsplit('.', 1)[-1]
            if last in ('qkv', 'proj') and isinstance(m, nn.Linear):
                found.setdefault(last, (m, 'weight'))
    linears = [m for m in site.mlp.modules() if isinstance(m, nn.Linear)]
    if len(linears) == 2:
        found['fc1'], found['fc2'] = (linears[0], 'weight'), (linears[1], 'weight')
    return found


@MODELS.register_module()
class LoRA(PromptMethod):
    """LoRA on the frozen linear layers of a transformer backbone's blocks.

    Where: the blocks the backbone's adapter describes (``block_sites``: TimmViT,
    mmseg VisionTransformer, mmdet/mmseg SwinTransformer). Other families are
    refused (LoRA here adapts linear layers of transformer blocks).

    How: each target linear ``y = W x + b`` gets ``y + B(A(dropout(x))) * alpha /
    rank`` through a forward hook, the frozen ``W`` untouched. torch's
    ``MultiheadAttention`` (mmseg's ViT) never calls its projections as modules,
    so there the attention call runs with ``W + B @ A * alpha / rank`` in place
    of its projection weights (``torch.func.functional_call``: the parameters
    themselves are not written), which leaves no input to drop out: ``dropout``
    must then be 0.

    Args:
        backbone (dict): inner backbone config (see :class:`PromptMethod`).
        rank (int): rank r of the update. Default 8 (peft's ``r``).
        alpha (float): the update is scaled by ``alpha / rank``. Default 8
            (peft's ``lora_alpha``), a scale of 1 at the default rank.
        dropout (float): dropout on the update's input in training, in [0, 1).
            Default 0 (peft's ``lora_dropout``). Training-only: not compared when
            packs load.
        targets (Sequence[str]): which linear layers of each block: among
            'qkv' (the attention's fused query/key/value projection), 'proj' (its
            output projection), 'fc1', 'fc2' (the MLP's two layers). Default
            ('qkv', ): the attention projections LoRA's paper adapts (it adapts
            W_q and W_v; with q, k, v fused in one matrix in every family here,
            the update covers all three).
        blocks (Sequence[int], optional): indices of the blocks (in forward
            order over all stages) that get updates; default every block that
            reaches a returned feature (later ones are skipped and logged). A
            block that reaches none is refused.
        pretrained, init_cfg, memory_efficient: see :class:`PromptMethod`.
    """
    method = 'lora'
    config_class = LoRAConfig
    identity_at_init = True  # B starts at zero

    def resolve(self, config: LoRAConfig) -> LoRAConfig:
        name = type(self.backbone).__name__
        sites = self._sites = transformer_sites(self)
        blocks = select_blocks(sites, config.blocks, 'LoRA', self.skipped)
        targets = [t for t in TARGETS if t in config.targets]
        self._layers = {}
        fused = set()
        for i in blocks:
            layers = block_layers(sites[i])
            missing = [t for t in targets if t not in layers]
            if missing:
                raise ValueError(
                    f'LoRA.targets {missing}: block {sites[i].name} of {name} has no '
                    f'such linear layer; it has {[t for t in TARGETS if t in layers]}')
            for t in targets:
                self._layers[f'{sites[i].name}.{t}'.replace('.', '_')] = layers[t]
                if isinstance(layers[t][0], nn.MultiheadAttention):
                    fused.add(t)
        if fused and config.dropout:
            raise ValueError(
                f'LoRA.dropout must be 0 with targets {sorted(fused)} on {name}: its '
                'torch MultiheadAttention uses these weights directly, so the update '
                'is added to the weight, with no input to drop out; got '
                f'{config.dropout!r}')
        return dataclasses.replace(config, alpha=float(config.alpha),
                                   dropout=float(config.dropout), targets=targets,
                                   blocks=blocks)

    @property
    def scale(self) -> float:
        return self.config.alpha / self.config.rank

    def inject(self) -> list:
        cfg = self.config
        self.lora_dropout = nn.Dropout(cfg.dropout)
        handles = []
        by_attention: Dict[nn.MultiheadAttention, Dict[str, str]] = {}
        for key, (module, weight) in self._layers.items():
            out_features, in_features = module.get_parameter(weight).shape
            self.prompts[key] = LowRankUpdate(in_features, out_features, cfg.rank,
                                              self.scale)
            if isinstance(module, nn.MultiheadAttention):
                by_attention.setdefault(module, {})[weight] = key
            else:
                handles.append(module.register_forward_hook(_LinearUpdate(self, key)))
        for module, keys in by_attention.items():
            handles.append(rebind_forward(module, _AttentionUpdate(self, module, keys)))
        return handles

    # -- merging ---------------------------------------------------------------------
    def merged(self) -> nn.Module:
        """The inner backbone with every update folded into its weight (``W + B @
        A * alpha / rank``) and no hooks: a stock module of the backbone's class
        with stock state-dict keys, computing what this method computes (up to
        float rounding) at no added cost, for inference.

        It is a deep copy: this method's frozen tensors stay bit-identical (the
        frozen set and its recorded identity do not change, so packs and
        checkpoints of this model keep loading) and it keeps training; folding
        into the frozen weights in place and subtracting later would not give
        them back bit for bit. The copy costs the backbone's memory once more.
        """
        model = copy.deepcopy(self)
        # Disabled or removed: the bare backbone.
        updates = model.prompts if model.prompts_enabled else {}
        with torch.no_grad():
            for key, update in updates.items():
                module, weight = model._layers[key]
                w = module.get_parameter(weight)
                w.add_(update.delta_weight().to(w.dtype))
        model.remove()
        return model.backbone

    def report_notes(self) -> List[str]:
        return [f'rank {self.config.rank} updates of {len(self._layers)} linear layers '
                '(one extra low-rank matmul pair each; none after merged())']

    def extra_repr(self) -> str:
        return f'{super().extra_repr()}, {len(self._layers)} target layers'


class _LinearUpdate:
    """Forward hook of a target ``nn.Linear``: adds its update to the output."""

    def __init__(self, method: LoRA, key: str):
        self.method, self.key = method, key

    def __call__(self, module, args, output):
        m = self.method
        if not m.prompts_enabled:
            return None
        return output + m.prompts[self.key](m.lora_dropout(args[0])).to(output.dtype)


class _AttentionUpdate:
    """The forward of a ``torch.nn.MultiheadAttention`` whose projection weights
    are targets: one call with ``W + delta`` substituted for them
    (``functional_call`` swaps them for the call only, and the swapped-in tensor
    carries the gradient to ``A`` and ``B``)."""

    def __init__(self, method: LoRA, module: nn.MultiheadAttention, keys: Dict[str, str]):
        self.method, self.module, self.keys = method, module, keys
        self._inside = False

    def __call__(self, *args, **kwargs):
        m, mha = self.method, self.module
        if self._inside or not m.prompts_enabled:
            # The class's forward: the bare attention, or the call that
            # functional_call makes with the substituted weights.
            return type(mha).forward(mha, *args, **kwargs)
        weights = {name: mha.get_parameter(name) + m.prompts[key].delta_weight()
                   for name, key in self.keys.items()}
        self._inside = True
        try:
            return torch.func.functional_call(mha, weights, args, kwargs)
        finally:
            self._inside = False
