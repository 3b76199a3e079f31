"""Visual Prompt Tuning: the method (``method.py``) and its mechanisms, one file
each, chosen by what the backbone's adapter offers: token prompts
(``tokens.py``), window prompts (``window.py``), key/value prompts (``kv.py``) and
pad prompts (``pad.py``)."""
from .common import Mechanism, PromptHolder, vpt_init_bound
from .method import VPT, VPTConfig
from .pad import PAD_MEAN, PAD_STD, bind_image_regions

__all__ = ['VPT', 'VPTConfig', 'Mechanism', 'PromptHolder', 'vpt_init_bound',
           'bind_image_regions', 'PAD_MEAN', 'PAD_STD']
