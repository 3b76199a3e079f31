"""Frozen: the head-only baseline, a frozen backbone and no prompts."""
from ..registry import MODELS
from .base import PromptMethod


@MODELS.register_module()
class Frozen(PromptMethod):
    """A frozen backbone and no prompts. Works with any backbone::

        backbone=dict(type='protune_mm.Frozen', backbone=dict(type='ResNet', ...))
    """
    method = 'frozen'
