"""What the methods acting inside transformer blocks share (LoRA, AdaptFormer):
the blocks (the adapter's ``block_sites``), which of them a config picks, and the
options every such method has (``dropout``, ``blocks``)."""
import dataclasses
from typing import Dict, List, Optional, Sequence

from ..adapters.base import BlockSite
from .config import MethodConfig

#: families whose adapters describe transformer blocks (``block_sites``).
SUPPORTED = 'TimmViT, mmseg VisionTransformer, mmdet/mmseg SwinTransformer'


@dataclasses.dataclass
class BlockMethodConfig(MethodConfig):
    """Options of a method inside transformer blocks, besides its own: ``dropout``
    (training only, in [0, 1)) and ``blocks`` (None: every block that reaches a
    returned feature; else block indices in forward order)."""
    dropout: float = 0.0
    blocks: Optional[List[int]] = None

    def validate(self) -> None:
        d = self.dropout
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0 <= d < 1:
            self.fail('dropout', 'a float in [0, 1)')
        if self.blocks is not None and (isinstance(self.blocks, int) or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in self.blocks)):
            self.fail('blocks', 'None (every block) or a list of ints (block indices)',
                      TypeError)

    def check_positive(self, name: str) -> None:
        value = getattr(self, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            self.fail(name, 'a number > 0')


def transformer_sites(method) -> List[BlockSite]:
    """The block sites of ``method``'s inner backbone; a backbone whose adapter
    describes none is refused, naming the families that have them."""
    sites = method.adapter.block_sites()
    if not sites:
        owner = type(method).__name__
        raise TypeError(f'{owner} needs the transformer blocks of the backbone, and '
                        f'{type(method.backbone).__name__} ({method.adapter.family}) has '
                        f'none described: {owner} supports {SUPPORTED}')
    return sites


def select_blocks(sites: List[BlockSite], blocks: Optional[Sequence[int]], owner: str,
                  skipped: Dict[str, str]) -> List[int]:
    """The indices of the chosen ``blocks`` among ``sites`` (``owner.blocks``, for
    errors): None is every block that reaches a returned feature (the others are
    recorded in ``skipped``); given indices must exist and reach one, since a
    block that reaches none would leave its parameters without gradient."""
    num = len(sites)
    if blocks is None:
        for site in sites:
            if not site.reaches_output:
                skipped[f'block {site.name}'] = 'it reaches no feature the backbone returns'
        return [i for i, s in enumerate(sites) if s.reaches_output]
    blocks = sorted(set(blocks))
    if not blocks:
        raise ValueError(f'{owner}.blocks is empty: give indices in [0, {num - 1}] '
                         '(or None for every block)')
    bad = [i for i in blocks if not 0 <= i < num]
    if bad:
        raise ValueError(f'{owner}.blocks has unknown block index {bad}: the backbone '
                         f'has {num} blocks, allowed [0, {num - 1}]')
    dead = [sites[i].name for i in blocks if not sites[i].reaches_output]
    if dead:
        raise ValueError(f'{owner}.blocks: {dead} reach no feature the backbone '
                         'returns (see its out_indices), so their parameters would get '
                         'no gradient (and DDP would fail); drop them')
    return blocks
