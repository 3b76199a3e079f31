"""The methods of the study and their variants (``--methods protune:hidden_ratio=0.25``)."""
import ast
import math
from collections import OrderedDict

#: method name -> (label in reports, wrapper type; None = the stock backbone).
METHODS = OrderedDict([
    ('frozen', ('head-only', 'protune_mm.Frozen')),
    ('protune', ('Pro-tuning', 'protune_mm.ProTune')),
    ('vpt', ('VPT', 'protune_mm.VPT')),
    ('full', ('full fine-tuning', None)),
    ('scratch', ('from scratch', None)),  # reference: task B without pre-training
])
DEFAULT_METHODS = ('frozen', 'protune', 'vpt', 'full')
BACKBONES = ('resnet', 'vit')
FROZEN_METHODS = ('frozen', 'protune', 'vpt')

#: study options of a method variant (``NAME:key=value,...``); every other key is
#: an argument of the method's wrapper (``protune:hidden_ratio=0.25``).
STUDY_OPTIONS = {
    'lr': 'task B learning rate of this variant (instead of --lr/--method-lr)',
    'prompt_lr': 'learning rate of the backbone-side parameters (prompts); the '
                 'head keeps the method lr',
    'backbone_lr': 'full fine-tuning: peak learning rate of the backbone; the head '
                   'keeps the method lr (a discriminative lr)',
    'per_block': 'Pro-tuning on ResNet: a block before every residual block '
                 '(stage_modules) instead of one per stage',
    'lp_iters': 'full fine-tuning after a linear probe (LP-FT): this many '
                'head-only iterations at --lr first, then --iters of full '
                'fine-tuning from the probed head',
}


class Variant(str):
    """A ``--methods`` entry: a method name, optionally with options,
    ``protune:hidden_ratio=0.25,prompt_lr=0.03``. It is its own key in results."""

    @property
    def name(self) -> str:
        return self.partition(':')[0]

    @property
    def options(self) -> 'OrderedDict[str, object]':
        return parse_options(self)

    @property
    def label(self) -> str:
        extra = ', '.join(f'{k}={v}' for k, v in self.options.items())
        return METHODS[self.name][0] + (f' ({extra})' if extra else '')

    @property
    def slug(self) -> str:
        """For file names: ``protune-hidden_ratio-0.25``."""
        return ''.join(c if c.isalnum() or c in '._' else '-' for c in self)


def parse_options(spec: str) -> 'OrderedDict[str, object]':
    """``'protune:hidden_ratio=0.25,place=output'`` -> ordered options; values are
    Python literals (numbers, True/False, quoted or bare strings)."""
    name, _, rest = spec.partition(':')
    options = OrderedDict()
    if not rest:
        return options
    for item in rest.split(','):
        key, sep, text = item.partition('=')
        if not sep or not key.isidentifier():
            raise ValueError(f'--methods {spec!r}: expected NAME:key=value[,key=value], '
                             f'got {item!r}')
        if key in options:
            raise ValueError(f'--methods {spec!r}: {key} given twice')
        try:
            options[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            options[key] = text
    return options


def check_variant(spec: str) -> Variant:
    """A validated :class:`Variant`; errors name the entry and the allowed values."""
    variant = Variant(spec)
    if variant.name not in METHODS:
        raise ValueError(f'--methods: unknown value(s) [{variant.name!r}]; allowed: '
                         f'{list(METHODS)} (optionally NAME:key=value,...)')
    options = variant.options
    wrapper = METHODS[variant.name][1]
    for key in ('lr', 'prompt_lr', 'backbone_lr'):
        if key in options and not (isinstance(options[key], (int, float))
                                   and not isinstance(options[key], bool)
                                   and math.isfinite(options[key]) and options[key] > 0):
            raise ValueError(f'--methods {spec!r}: {key} must be a positive number, '
                             f'got {options[key]!r}')
    if 'per_block' in options and (variant.name != 'protune'
                                   or options['per_block'] not in (True, False)):
        raise ValueError(f'--methods {spec!r}: per_block=True/False is a protune option')
    if 'lp_iters' in options and (variant.name != 'full' or isinstance(
            options['lp_iters'], bool) or not isinstance(options['lp_iters'], int)
            or options['lp_iters'] < 1):
        raise ValueError(f'--methods {spec!r}: lp_iters=N (N >= 1) is a full option')
    if 'prompt_lr' in options and variant.name not in ('protune', 'vpt'):
        raise ValueError(f'--methods {spec!r}: prompt_lr needs prompts (protune, vpt)')
    if 'backbone_lr' in options and variant.name not in ('full', 'scratch'):
        raise ValueError(f'--methods {spec!r}: backbone_lr needs a trained backbone '
                         '(full, scratch)')
    wrapper_keys = [k for k in options if k not in STUDY_OPTIONS]
    if wrapper_keys and wrapper is None:
        raise ValueError(f'--methods {spec!r}: {variant.name} has no wrapper; its '
                         f"options are ['lr', 'backbone_lr', 'lp_iters'], got "
                         f'{wrapper_keys}')
    return variant


def method_lr(args, method: str) -> float:
    """``lr=`` of the variant, else --method-lr of the entry, else --lr."""
    return Variant(method).options.get('lr', args.method_lr.get(method, args.lr))
