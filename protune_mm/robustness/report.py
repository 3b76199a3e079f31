"""Aggregation (mPC, rPC), the printed table, the chart and the JSON of a
robustness run, shared by tools/test_robustness.py and the transfer study.

mPC is the mean of a metric over every corruption and severity (1-5) evaluated,
rPC = mPC / clean (Michaelis et al. 2019, 'Benchmarking Robustness in Object
Detection').
"""
import os
import os.path as osp
import statistics
from collections import OrderedDict

from ..fileio import write_json  # noqa: F401  (part of this module's API)
from .corruptions import FAMILIES, family_of

#: the stock metric of each task that the summary is about.
HEADLINE = ('coco/bbox_mAP', 'coco/segm_mAP', 'mIoU')


def headline_keys(metrics: dict) -> list:
    keys = [k for k in HEADLINE if k in metrics]
    return keys or [k for k, v in metrics.items() if isinstance(v, (int, float))]


def summarise(clean: dict, corrupted: dict, keys=None) -> OrderedDict:
    """``corrupted``: {corruption: {severity: metrics}} (severities >= 1; str or
    int keys). Per key: clean, mPC, rPC, the mean per corruption and the mean per
    family and severity."""
    keys = keys or headline_keys(clean)
    out = OrderedDict()
    for key in keys:
        values, per_corruption = [], OrderedDict()
        per_family = OrderedDict()
        for corruption, by_severity in corrupted.items():
            vals = [float(m[key]) for s, m in by_severity.items() if int(s) > 0]
            if not vals:
                continue
            values.extend(vals)
            per_corruption[corruption] = round(statistics.mean(vals), 4)
            family = per_family.setdefault(family_of(corruption), {})
            for s, m in by_severity.items():
                family.setdefault(int(s), []).append(float(m[key]))
        entry = OrderedDict(clean=float(clean[key]))
        entry['mPC'] = round(statistics.mean(values), 4) if values else None
        entry['rPC'] = (round(entry['mPC'] / entry['clean'], 4)
                        if values and entry['clean'] else None)
        entry['per_corruption'] = per_corruption
        entry['per_family'] = OrderedDict(
            (f, OrderedDict((str(s), round(statistics.mean(v), 4))
                            for s, v in sorted(by_s.items())))
            for f, by_s in sorted(per_family.items(),
                                  key=lambda item: list(FAMILIES).index(item[0])))
        out[key] = entry
    return out


def _fmt(key: str, value) -> str:
    if value is None:
        return '-'
    return f'{value:.3f}' if key.startswith('coco/') else f'{value:.2f}'


def format_table(clean: dict, corrupted: dict, severities, keys=None) -> str:
    """One table per headline metric: a row per corruption (a column per severity,
    then the mean), then a line with clean, mPC and rPC."""
    from prettytable import PrettyTable
    summary = summarise(clean, corrupted, keys)
    severities = [s for s in severities if s > 0]
    blocks = []
    for key, entry in summary.items():
        table = PrettyTable([key] + [f's{s}' for s in severities] + ['mean'], align='r')
        table.align[key] = 'l'
        for corruption, by_severity in corrupted.items():
            table.add_row([corruption] + [
                _fmt(key, by_severity[str(s)][key] if str(s) in by_severity else None)
                for s in severities] + [_fmt(key, entry['per_corruption'].get(corruption))])
        rpc = '-' if entry['rPC'] is None else f"{entry['rPC']:.3f}"
        blocks.append(f"{table.get_string()}\nclean {_fmt(key, entry['clean'])}   "
                      f"mPC {_fmt(key, entry['mPC'])}   rPC {rpc}")
    return '\n\n'.join(blocks)


def plot(clean: dict, corrupted: dict, path: str, title: str = '', keys=None) -> str:
    """PNG: each headline metric against severity (0 = clean), one line per
    corruption family (mean over its corruptions in the run)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    summary = summarise(clean, corrupted, keys)
    fig, axes = plt.subplots(1, len(summary), figsize=(5 * len(summary), 4),
                             squeeze=False)
    for ax, (key, entry) in zip(axes[0], summary.items()):
        for family, by_severity in entry['per_family'].items():
            xs = [0] + [int(s) for s in by_severity]
            ys = [entry['clean']] + list(by_severity.values())
            ax.plot(xs, ys, marker='o', label=family)
        ax.axhline(entry['clean'], color='grey', linestyle='--', linewidth=1,
                   label='clean')
        rpc = '' if entry['rPC'] is None else f", rPC {entry['rPC']:.2f}"
        ax.set_title(f"{key} (mPC {_fmt(key, entry['mPC'])}{rpc})", fontsize=10)
        ax.set_xlabel('severity (0 = clean)')
        ax.set_ylabel(key)
        ax.set_xticks(range(6))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
