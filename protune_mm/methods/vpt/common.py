"""What the four VPT mechanisms share: the prompt holder, VPT's init bound, and
the :class:`Mechanism` interface the method chooses from."""
import math
from typing import Dict, List, NamedTuple, Optional

import torch
import torch.nn as nn


def vpt_init_bound(patch_size, embed_dim: int) -> float:
    """VPT's uniform init bound sqrt(6 / (3 * ph * pw + d)) (0.0625 for ViT-B/16)."""
    ph, pw = (patch_size, patch_size) if isinstance(patch_size, int) else patch_size
    return math.sqrt(6.0 / float(3 * ph * pw + embed_dim))


def uniform_prompt(num_tokens: int, width: int, patch_size) -> nn.Parameter:
    """``(1, num_tokens, width)`` prompts, uniform(-v, v), v = :func:`vpt_init_bound`."""
    prompt = nn.Parameter(torch.empty(1, num_tokens, width))
    bound = vpt_init_bound(patch_size, width)
    nn.init.uniform_(prompt, -bound, bound)
    return prompt


class PromptHolder(nn.Module):
    """Holds one prompt tensor as ``.prompt`` (keys end in 'prompt', as VPT's)."""

    def __init__(self, prompt: nn.Parameter):
        super().__init__()
        self.prompt = prompt

    def extra_repr(self):
        return f'prompt: {tuple(self.prompt.shape)}'


class Built(NamedTuple):
    """What a mechanism made: prompt modules by key, the handles of what it
    attached, and {target: reason} of prompts it did not create."""
    prompts: Dict[str, nn.Module]
    handles: List
    skipped: Dict[str, str]


class Mechanism:
    """One way of giving a backbone VPT prompts, chosen by what its adapter offers.

    Subclasses say where they apply (:meth:`sites_of`: the adapter's capability, or
    None), what the method's options resolve to there (:meth:`resolve`), and build
    the prompts with their hooks (:meth:`build`). At run time the hooks read the
    prompts and the on/off switch from the method they were built for (its
    ``prompts``, ``prompts_enabled`` and ``dropped``), so loading a pack into the
    method's prompts is all a swap needs.
    """
    name = ''
    #: the adapter method naming this mechanism's sites (None where it lacks them).
    capability = ''
    #: VPT's ``location`` this mechanism implements.
    location = 'prepend'
    #: the default dropout on prompts.
    dropout = 0.1

    def __init__(self, adapter, sites):
        self.adapter, self.sites = adapter, sites

    @classmethod
    def sites_of(cls, adapter):
        """The adapter's sites for this mechanism, or None where it does not apply."""
        return getattr(adapter, cls.capability)()

    @classmethod
    def find(cls, adapter) -> Optional['Mechanism']:
        sites = cls.sites_of(adapter)
        return None if sites is None else cls(adapter, sites)

    def resolve(self, config, backbone: str) -> dict:
        """Resolved values of the options left to the backbone (``deep``), or a
        one-line error where the mechanism cannot do what ``config`` asks."""
        return dict(deep=True if config.deep is None else config.deep)

    def build(self, config, method) -> Built:
        raise NotImplementedError

    def describe(self) -> str:
        """Where prompts attach, for ``print(model)``."""
        return f'{self.name} prompts'

    def report_notes(self) -> List[str]:
        """Costs beyond the parameters, for the parameter report."""
        return []


class DeepOnly(Mechanism):
    """A mechanism with its own prompts in every block (VPT-deep), where
    VPT-shallow is refused: ``shallow_refusal`` says why."""
    shallow_refusal = ''

    def resolve(self, config, backbone: str) -> dict:
        if config.deep is False and config.num_tokens:
            raise ValueError(self.shallow_refusal.format(backbone=backbone))
        return dict(deep=True if config.deep is None else config.deep)

    def describe(self) -> str:
        return f'{self.name} prompts at {len(self.sites)} attentions'

    def build(self, config, method) -> Built:
        """One :func:`uniform_prompt` per site, keyed by the site's name, attached
        by :meth:`attach`."""
        prompts, handles = {}, []
        for site in self.sites:
            prompts[site.name] = PromptHolder(
                uniform_prompt(config.num_tokens, site.width, site.patch_size))
            handles.append(self.attach(site, method))
        return Built(prompts, handles, {})

    def attach(self, site, method):
        """Make ``site`` use ``method.prompts[site.name]``; return the handle."""
        raise NotImplementedError
