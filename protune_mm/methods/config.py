"""Method configs: each method's options in one dataclass, checked beside them.

A method's config is what a checkpoint or pack records about how its prompts were
made (``PromptMethod.method_config()``); the base arguments (``backbone``,
``pretrained``, ``init_cfg``, ``memory_efficient``, ``recompute``, ``adapter``) are not part of it.
Options that default to ``None`` ("by backbone") are resolved by the method once it
knows the backbone (``dataclasses.replace``), so two equal models have equal configs.
"""
import copy
import dataclasses
from typing import ClassVar, Dict, Tuple


@dataclasses.dataclass
class MethodConfig:
    """The options of a method; the base has none (``Frozen``, or a method whose
    only options are its code).

    Subclasses declare each option as a field with its default, check them in
    :meth:`validate` (run at construction, before the backbone is built, and again
    on the resolved config), and name their method in :attr:`owner` for messages.
    """
    #: the method's class name, for messages ('ProTune.groups must ...').
    owner: ClassVar[str] = 'PromptMethod'
    #: options added after packs were first written, with the value that older
    #: packs and checkpoints (which lack them) were trained with.
    legacy_defaults: ClassVar[Dict[str, object]] = {}
    #: defaults changed since checkpoints were written without a method record,
    #: named when such a checkpoint is loaded (it cannot be checked).
    changed_defaults: ClassVar[str] = ''
    #: options recorded only when set (files written before they existed lack them).
    recorded_if_set: ClassVar[Tuple[str, ...]] = ()

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise a one-line error naming the option and its allowed values."""

    @classmethod
    def from_options(cls, options: dict, method: str = '') -> 'MethodConfig':
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise TypeError(f'{method or cls.owner} got unknown option(s) {unknown}; its options '
                            f'are {names or "none"} (and backbone, pretrained, init_cfg, '
                            'memory_efficient, recompute)')
        return cls(**options)

    def record(self) -> dict:
        """The options as recorded in checkpoints and packs."""
        record = {f.name: copy.deepcopy(getattr(self, f.name))
                  for f in dataclasses.fields(self)}
        for name in self.recorded_if_set:
            if record[name] is None:
                record.pop(name)
        return record

    # -- checks shared by the configs -------------------------------------------------
    def fail(self, name: str, allowed: str, exc: type = ValueError):
        raise exc(f'{self.owner}.{name} must be {allowed}, got {getattr(self, name)!r}')

    def check_int(self, name: str, minimum: int, allowed: str = '') -> None:
        value = getattr(self, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.fail(name, allowed or ('a positive int' if minimum == 1
                                        else f'an int >= {minimum}'))

    def check_choice(self, name: str, choices, allowed: str = '') -> None:
        if getattr(self, name) not in choices:
            self.fail(name, allowed or f'one of {list(choices)}')
