"""What a sweep found: counts by status and by backbone type (written to the JSON)
and the printed report (table, failing configs, configs not checked)."""
from collections import OrderedDict
from typing import List

from .configs import CHECKED, NO_BACKBONE, NOT_BUILT, NOT_LOADED

#: how each status is said in the summary.
SAID = {NOT_BUILT: 'whose bare backbone does not build or run',
        NO_BACKBONE: 'without model.backbone', NOT_LOADED: 'that do not load'}


def clock(seconds: float) -> str:
    return f'{int(seconds // 60)}m{seconds % 60:04.1f}s'


def summarise(configs: dict, backbones: list, methods: List[str]) -> dict:
    checked = [c for c in configs.values() if c['status'] == CHECKED]
    counts = OrderedDict((s, sum(c['status'] == s for c in configs.values()))
                         for s in (CHECKED, NOT_BUILT, NO_BACKBONE, NOT_LOADED))
    passing = {m: sum(backbones[c['backbone']]['methods'][m]['ok'] for c in checked)
               for m in methods}
    by_type = OrderedDict()
    for c in sorted(configs.values(), key=lambda c: c.get('backbone', -1)):
        if 'backbone' not in c:
            continue
        b = backbones[c['backbone']]
        row = by_type.setdefault(b['type'], dict(configs=0, backbones=set(),
                                                 checked=0, passing=dict.fromkeys(methods, 0)))
        row['configs'] += 1
        row['backbones'].add(b['id'])
        if c['status'] == CHECKED:
            row['checked'] += 1
            for m in methods:
                row['passing'][m] += b['methods'][m]['ok']
    for row in by_type.values():
        row['backbones'] = len(row['backbones'])
    by_type = OrderedDict(sorted(by_type.items(), key=lambda kv: (-kv[1]['configs'], kv[0])))
    return dict(configs=len(configs), **{s.replace(' ', '_'): n for s, n in counts.items()},
                passing=passing,
                share={m: round(passing[m] / len(checked), 4) if checked else None
                       for m in methods},
                by_type=by_type)


def share(n: int, total: int) -> str:
    return f'{100 * n / total:.0f}%' if total else '-'


def format_table(result: dict) -> str:
    """Configs, unique backbones, checked configs and the share passing each
    method, by backbone type, then for all."""
    from prettytable import PrettyTable
    s, methods = result['summary'], result['methods']
    table = PrettyTable(['backbone type', 'configs', 'unique', 'checked', *methods],
                        align='r')
    table.align['backbone type'] = 'l'
    rows = list(s['by_type'].items())
    for i, (t, r) in enumerate(rows):
        table.add_row([t, r['configs'], r['backbones'], r['checked']] +
                      [share(r['passing'][m], r['checked']) for m in methods],
                      divider=i == len(rows) - 1)
    table.add_row(['all', sum(r['configs'] for _, r in rows), len(result['backbones']),
                   s['checked']] + [share(s['passing'][m], s['checked']) for m in methods])
    return table.get_string()


def failing_lines(result: dict) -> List[str]:
    """One line per checked config that fails a method: the methods and why."""
    lines = []
    backbones = result['backbones']
    for name, c in result['configs'].items():
        if c['status'] != CHECKED:
            continue
        b = backbones[c['backbone']]
        bad = [(m, r) for m, r in b['methods'].items() if not r['ok']]
        if bad:
            why = '; '.join(f"{m}: {' | '.join(r['failures'])}" for m, r in bad)
            lines.append(f'{name} [{b["type"]}]: {why}')
    return lines


def skipped_lines(result: dict) -> List[str]:
    lines = []
    for status in (NOT_BUILT, NOT_LOADED, NO_BACKBONE):
        names = [(n, c['reason']) for n, c in result['configs'].items()
                 if c['status'] == status]
        if not names:
            continue
        lines.append(f'{len(names)} configs {SAID[status]}:')
        if status == NO_BACKBONE:  # the reason is the model type: count them
            reasons = OrderedDict()
            for _, why in names:
                reasons[why] = reasons.get(why, 0) + 1
            lines += [f'  {n} x {why}' for why, n in reasons.items()]
        else:
            lines += [f'  {n}: {why}' for n, why in names]
    return lines


def report(result: dict, out: str) -> List[str]:
    """The printed report of a sweep's ``result`` (written to ``out``)."""
    s, methods = result['summary'], result['methods']
    lines = ['', format_table(result), '']
    lines.append(f"{s['configs']} configs: {s['checked']} checked, " + ', '.join(
        f"{s[status.replace(' ', '_')]} {said}" for status, said in SAID.items()) +
        f"; {len(result['backbones'])} unique backbones in {clock(result['seconds'])} "
        f"({clock(result['cpu_seconds'])} of CPU time, {result['jobs']} jobs)")
    lines.append('passing (of checked): ' + ', '.join(
        f"{m} {s['passing'][m]}/{s['checked']} ({share(s['passing'][m], s['checked'])})"
        for m in methods))
    failing = failing_lines(result)
    if failing:
        lines += ['', f'Failing configs ({len(failing)}):', *failing]
    skipped = skipped_lines(result)
    if skipped:
        lines += ['', 'Not checked:', *skipped]
    lines += ['', f'Results: {out}']
    return lines


# The recorded versions: mmengine's collect_env reports only torch and mmengine of
# these (and runs gcc and nvcc), so each package's own __version__ is read.
def versions() -> dict:
    import importlib
    found = {}
    for pkg in ('torch', 'mmcv', 'mmengine', 'mmdet', 'mmseg', 'mmpretrain', 'timm',
                'protune_mm'):
        try:
            found[pkg] = importlib.import_module(pkg).__version__
        except Exception:  # an optional package: recorded as absent
            found[pkg] = None
    return found
