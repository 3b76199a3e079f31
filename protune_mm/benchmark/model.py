"""The model of each benchmark variant: the config's model with random weights and
its backbone wrapped as the variant asks.

A variant is ``[LABEL=]METHOD[+me][:JSON kwargs]``: ``full`` (the stock model,
trained as its config says) or a registered method (``frozen``, ``protune``,
``vpt``); ``+me`` builds the wrapper with ``memory_efficient=True`` (every memory
path of the family: lean frozen ops, ``protune_mm/ops/frozen_ops.py``, on the ResNet
family; recomputed frozen blocks, ``protune_mm/ops/recompute.py``, on Swin and the
ViTs); without it the variant is built with ``memory_efficient=False``, the plain
autograd path. ``+me:{"recompute": false}`` keeps the lean ops alone.
"""
import copy
import json

from protune_mm.sweep.configs import sync_bn_to_bn
from protune_mm.sweep.methods import method_of, method_types

#: the variant that wraps nothing.
FULL = 'full'
#: option keys of a wrapper config that are not the method's options.
_NOT_OPTIONS = ('type', 'backbone', 'init_cfg', 'pretrained')


def variant_methods() -> list:
    """METHOD names a variant may take, sorted."""
    return sorted([FULL, *method_types()])


def parse_variant(spec: str) -> dict:
    """``[LABEL=]METHOD[+me][:JSON]`` -> dict(label, method, memory_efficient, kwargs)."""
    label, _, rest = spec.partition('=') if '=' in spec.split(':', 1)[0] else ('', '', spec)
    name, _, kwargs = rest.partition(':')
    memory_efficient = name.endswith('+me')
    method = name[:-3] if memory_efficient else name
    if method not in variant_methods():
        raise ValueError(f'--methods: unknown method {method!r} in {spec!r}; allowed: '
                         f'{variant_methods()} (optionally with +me and :JSON kwargs)')
    if memory_efficient and method == FULL:
        raise ValueError(f"--methods: '+me' needs a frozen backbone, not {spec!r}")
    try:
        kwargs = json.loads(kwargs) if kwargs else {}
    except json.JSONDecodeError as e:
        raise ValueError(f'--methods: bad JSON kwargs in {spec!r}: {e}') from e
    if not isinstance(kwargs, dict):
        raise ValueError(f'--methods: kwargs of {spec!r} must be a JSON object')
    return dict(label=label or name, method=method,
                memory_efficient=memory_efficient, kwargs=kwargs)




def model_config(cfg, variant: dict):
    """The model config of a variant: random init, backbone wrapped as asked (each
    method's defaults resolve per backbone, e.g. VPT takes pad prompts on a ResNet)."""
    model = copy.deepcopy(cfg.model)
    model.pop('pretrained', None)
    backbone = model['backbone']
    config_kwargs = {}
    method = method_of(backbone['type'])
    if method is not None:
        # A prompt config: its inner backbone is the stock one; its own method
        # options are the defaults of the same method.
        if method == variant['method']:
            config_kwargs = {k: v for k, v in backbone.items() if k not in _NOT_OPTIONS}
        backbone = backbone['backbone']
        model['backbone'] = backbone
    backbone['init_cfg'] = None
    backbone.pop('pretrained', None)
    sync_bn_to_bn(model)
    if variant['method'] != FULL:
        kwargs = dict(config_kwargs, **variant['kwargs'])
        # Without +me the plain autograd path (lean ops are on by default).
        kwargs['memory_efficient'] = variant['memory_efficient']
        model['backbone'] = dict(type=method_types()[variant['method']],
                                 backbone=backbone, **kwargs)
    return model
