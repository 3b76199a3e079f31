"""The package's import structure: no import circle, and the lower layers never
import the methods.

Read from the source with ``ast`` (every import statement, at module level or
inside a function), so nothing needs importing; an import-linter contract would
say the same but add a tool to the set-up for one check.
"""
import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / 'protune_mm'
#: packages below the methods: they may not import ``protune_mm.methods``.
LOWER = ('checkpoint', 'ops', 'adapters')
MAX_LINES = 450


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def imports_of(path: pathlib.Path, modules: set) -> set:
    """The protune_mm modules that ``path`` imports (``from .x import y`` counts
    as ``x.y`` where that is a module, else as ``x``)."""
    name = module_name(path)
    package = name if path.name == '__init__.py' else name.rsplit('.', 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - node.level + 1]
                stem = '.'.join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ''
            targets = [f'{stem}.{a.name}' if f'{stem}.{a.name}' in modules else stem
                       for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # a name inside a module
                target = target.rpartition('.')[0]
            if target and target != name:
                found.add(target)
    return found


def graph() -> dict:
    paths = sorted(PACKAGE.rglob('*.py'))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, modules) for p in paths}


def test_the_import_graph_sees_known_edges():
    edges = graph()
    assert 'protune_mm.checkpoint' in edges['protune_mm.methods.base']
    assert 'protune_mm.methods.vpt.pad' in edges['protune_mm.methods.vpt.method']


def test_no_lower_layer_imports_the_methods():
    bad = [f'{m} imports {t}' for m, targets in graph().items()
           if m.split('.')[1:2] and m.split('.')[1] in LOWER for t in targets
           if t.startswith('protune_mm.methods')]
    assert not bad, bad


def _is_package_init(module: str, target: str) -> bool:
    # A package's __init__ importing its own submodules (and they, names from the
    # package's siblings) is how packages are put together, not a circle.
    return target.startswith(module + '.')


def test_no_import_circle():
    edges = {m: {t for t in ts if not _is_package_init(m, t)} for m, ts in graph().items()}
    state, stack, circles = {}, [], []

    def visit(m):
        state[m] = 'open'
        stack.append(m)
        for t in sorted(edges.get(m, ())):
            if state.get(t) == 'open':
                circles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 'done'

    for m in sorted(edges):
        if m not in state:
            visit(m)
    assert not circles, '\n'.join(' -> '.join(c) for c in circles)


@pytest.mark.parametrize('path', sorted(PACKAGE.rglob('*.py')),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_too_long_to_hold_in_ones_head(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f'{path.relative_to(PACKAGE.parent)}: {lines} lines'
