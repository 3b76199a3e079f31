"""The registered prompt methods, by name, as the sweep and the benchmark take them."""
from typing import Dict


def method_types() -> Dict[str, str]:
    """``{method name: registry type}`` of every registered method, e.g.
    ``{'frozen': 'protune_mm.Frozen', 'protune': 'protune_mm.ProTune', ...}``,
    sorted by name (registration order depends on import order)."""
    from protune_mm import MODELS, PromptMethod
    types = {}
    for name, cls in MODELS.module_dict.items():
        if isinstance(cls, type) and issubclass(cls, PromptMethod):
            types.setdefault(cls.method, f'{MODELS.scope}.{name}')
    return dict(sorted(types.items()))


def method_of(type_) -> str:
    """The method name of a backbone ``type`` (a registry name in any scope, or
    a class) if it is a registered method, else None."""
    from protune_mm import MODELS, PromptMethod
    cls = type_
    if isinstance(type_, str):
        try:
            cls = MODELS.get(type_)
        except Exception:  # a scope that is not installed: not one of ours
            return None
    return cls.method if isinstance(cls, type) and issubclass(cls, PromptMethod) else None
