"""Visual Prompt Tuning (Jia et al., ECCV 2022, arXiv 2203.12119; official code
KMnP/vpt): the method and its options. How the prompts reach the backbone is one
of four mechanisms (one file each), chosen by what the backbone's adapter offers."""
import dataclasses
from typing import ClassVar, Optional

import torch
import torch.nn as nn

from ...registry import MODELS
from ..base import PromptMethod
from ..config import MethodConfig
from .common import PromptHolder
from .kv import KeyValuePrompts
from .pad import PadPrompts
from .tokens import TokenPrompts
from .window import WindowPrompts

#: tried in this order; pad prompts fit any image backbone.
MECHANISMS = (TokenPrompts, WindowPrompts, KeyValuePrompts, PadPrompts)
LOCATIONS = ('prepend', 'pad')


@dataclasses.dataclass
class VPTConfig(MethodConfig):
    """The options of :class:`VPT` (documented there)."""
    owner: ClassVar[str] = 'VPT'

    num_tokens: int = 10
    deep: Optional[bool] = None
    dropout: Optional[float] = None
    location: Optional[str] = None
    pad_base: int = 224
    pad_align: Optional[int] = None

    def validate(self) -> None:
        self.check_int('num_tokens', 0)
        d = self.dropout
        if d is not None and (isinstance(d, bool) or not isinstance(d, (int, float))
                              or not 0 <= d < 1):
            self.fail('dropout', 'a float in [0, 1)')
        if self.deep not in (None, True, False):
            self.fail('deep', 'True, False or None (auto)', TypeError)
        self.check_choice('location', (None, ) + LOCATIONS,
                          f'one of {LOCATIONS} or None (by backbone)')
        self.check_int('pad_base', 1)
        if self.pad_align is not None:
            self.check_int('pad_align', 1, "a positive int or None (32, or the backbone's "
                           'largest output stride where larger)')


@MODELS.register_module()
class VPT(PromptMethod):
    """VPT prompts for a frozen backbone.

    - Token backbones (TimmViT, mmseg VisionTransformer/BEiT/MAE),
      ``location='prepend'``: ``num_tokens`` prompt tokens after CLS/registers,
      before the patch tokens, inserted after the
      position embedding (they get none). With ``deep=True`` every later block
      replaces them with its own prompts, up to the last block whose output the
      backbone returns. Outputs keep their shape (``tokens.py``).
    - Window attention (Swin), ``location='prepend'``: VPT-deep per block: each
      window attention also attends to the block's prompts. ``deep=False`` is
      refused (``window.py``).
    - Spatial-reduction attention (MiT, PVT, Twins), ``location='prepend'``:
      VPT-deep per block: the block's prompts join the keys/values of its
      attention. ``deep=False`` is refused (``kv.py``).
    - Any other image backbone, ``location='pad'``: a learned border of
      ``num_tokens`` pixels around each image, which grows the input; outputs are
      cropped back to the image's cells (``pad.py``). ``deep`` does not apply.

    Args:
        backbone (dict): inner backbone config.
        num_tokens (int): prompt tokens per layer, or border width in pixels. 0
            gives the bare frozen backbone. Default 10.
        deep (bool, optional): VPT-deep (token/window prompts). Default: True
            there, False for pad prompts.
        dropout (float, optional): dropout on prompts, in [0, 1). Default: 0.1
            for token/window prompts, 0 for pad prompts (the official code has
            none there).
        location (str, optional): 'prepend' or 'pad'; default by backbone.
        pad_base (int): pad prompts are learned for images of this side length
            and resized to each image's sides (the official code's crop size).
            Default 224.
        pad_align (int, optional): pad prompts: the image sits at an offset
            that is the smallest multiple of this holding the prompts, so every
            output stride that divides it keeps whole cells (outputs are cropped
            back). Default: 32, or the backbone's largest output stride where
            that is larger (64 for RTMDet-P6), found by one probe forward at
            construction. Not smaller by default: backbones may downsample
            inside beyond their outputs (ERFNet: 1/8 inside, outputs at 1/2), and
            the border must be whole cells there too. A dilated ResNetV1c (every
            stride at most 8) is exact with 8, a cheaper border.
        pretrained, init_cfg, memory_efficient, recompute: see :class:`PromptMethod`.
    """
    method = 'vpt'
    config_class = VPTConfig
    identity_at_init = False  # prompts drawn at random, as published

    def resolve(self, config: VPTConfig) -> VPTConfig:
        # The first mechanism whose capability the adapter offers.
        self.mechanism = next(found for found in (cls.find(self.adapter)
                                                  for cls in MECHANISMS)
                              if found is not None)
        name = type(self.backbone).__name__
        allowed = self.mechanism.location
        if config.location not in (None, allowed):
            raise ValueError(f"VPT.location must be '{allowed}' (or None) for {name}, "
                             f'got {config.location!r}')
        resolved = dict(location=allowed, **self.mechanism.resolve(config, name))
        if config.dropout is None:
            resolved['dropout'] = self.mechanism.dropout
        return dataclasses.replace(config, **resolved)

    def inject(self) -> list:
        self.prompt_dropout = nn.Dropout(self.config.dropout)
        if self.config.num_tokens == 0:
            return []
        built = self.mechanism.build(self.config, self)
        self.prompts.update(built.prompts)
        self.skipped.update(built.skipped)
        return built.handles

    # The options as attributes, for code that read them so.
    num_tokens = property(lambda self: self.config.num_tokens)
    deep = property(lambda self: self.config.deep)
    pad_base = property(lambda self: self.config.pad_base)
    pad_align = property(lambda self: self.config.pad_align)

    def report_notes(self):
        notes = self.mechanism.report_notes() if self.num_tokens else []
        return notes + super().report_notes()

    def extra_repr(self) -> str:
        return f'{super().extra_repr()}, mechanism: {self.mechanism.describe()}'

    def dropped(self, holder: PromptHolder, like: torch.Tensor) -> torch.Tensor:
        """A prompt through the prompt dropout, in ``like``'s dtype."""
        return self.prompt_dropout(holder.prompt).to(like.dtype)
