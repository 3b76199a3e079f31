"""The benchmark's report: medians over rounds, the table of measures with ratios
to the reference variant, and the chart of those ratios."""
import os.path as osp
import statistics

MEASURES = [  # key, column title, ratio?
    ('trainable_params', 'trainable', True),
    ('prompt_pct_of_backbone', 'prompt %bb', False),
    ('checkpoint_bytes', 'ckpt MB', False),
    ('task_pack_bytes', 'pack MB', True),
    ('step_time_s', 'step s', True),
    ('peak_mem_bytes', 'peak MiB', True),
    ('infer_latency_s', 'infer s', True),
]


def aggregate(runs: list) -> dict:
    """Median over rounds of every numeric measure of each variant."""
    out = {}
    for label in dict.fromkeys(r['variant'] for r in runs):
        mine = [r for r in runs if r['variant'] == label]
        agg = dict(mine[0])
        for key, _, _ in MEASURES:
            values = [r[key] for r in mine if key in r]
            if values:
                agg[key] = statistics.median(values)
        agg['rounds'] = len(mine)
        out[label] = agg
    return out


def fmt(key, value) -> str:
    """A measure as the table shows it (MB, MiB, millions of parameters, s)."""
    if key.endswith('_bytes'):
        scale = 2**20 if key == 'peak_mem_bytes' else 1e6
        return f'{value / scale:.1f}'
    if key == 'trainable_params':
        return f'{value / 1e6:.2f}M'
    if key == 'prompt_pct_of_backbone':
        return f'{value:.2f}'
    return f'{value:.3f}'


def format_table(agg: dict, reference: str) -> str:
    """One row per variant: its measures, then the ratios to ``reference``."""
    from prettytable import PrettyTable
    ref = agg[reference]
    keys = [m for m in MEASURES if m[0] in ref]
    table = PrettyTable(['variant'] + [title for _, title, _ in keys] +
                        [f'{title} x' for _, title, ratio in keys if ratio], align='r')
    table.align['variant'] = 'l'
    for label, r in agg.items():
        table.add_row([label] + [fmt(k, r[k]) for k, _, _ in keys] +
                      [f'{r[k] / ref[k]:.3f}' if ref[k] else '-'
                       for k, _, ratio in keys if ratio])
    return table.get_string() + f'\n(x = ratio to {reference!r})'


def draw_chart(agg: dict, reference: str, path: str, title: str):
    """A PNG bar chart of each variant's ratios to ``reference`` (written
    atomically)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from protune_mm.fileio import atomic_write
    ref = agg[reference]
    keys = [(k, t) for k, t, ratio in MEASURES if ratio and k in ref]
    labels = list(agg)
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(keys), 3.6))
    width = 0.8 / len(labels)
    for i, label in enumerate(labels):
        ratios = [agg[label][k] / ref[k] for k, _ in keys]
        bars = ax.bar([j + i * width for j in range(len(keys))], ratios, width,
                      label=label)
        for bar, v in zip(bars, ratios):
            ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), f'{v:.2f}',
                    ha='center', va='bottom', fontsize=6)
    ax.axhline(1.0, color='k', lw=0.6)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(keys))])
    ax.set_xticklabels([t for _, t in keys])
    ax.set_ylabel(f'ratio to {reference}')
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    with atomic_write(path) as tmp:  # the format from the name, as savefig(path) takes it
        fig.savefig(tmp, dpi=110, format=osp.splitext(path)[1][1:] or 'png')
    plt.close(fig)
