"""The study's results: per-method summaries over seeds, the tables, the JSON report
and the command that reproduces it."""
import os
import platform
import shlex
import statistics
from collections import OrderedDict
from datetime import datetime

import torch
from prettytable import HRuleStyle, PrettyTable, VRuleStyle

from protune_mm.version import __version__
from .loop import PRETRAIN_SEED, WARMUP_FRACTION
from .models import MEAN, STD, head_config
from .tasks import TASKS, num_train_b
from .variants import Variant, method_lr


def _stats(values, digits: int = 2) -> dict:
    return dict(mean=round(statistics.mean(values), digits),
                std=round(statistics.stdev(values), digits) if len(values) > 1 else 0.0)


def summarise(runs: dict, seeds) -> OrderedDict:
    """Per method: mean/std/per-seed mIoU and aAcc, gain over head-only."""
    out = OrderedDict()
    for method, per_seed in runs.items():
        first = per_seed[seeds[0]]
        miou = [per_seed[s]['mIoU'] for s in seeds]
        entry = OrderedDict(
            label=Variant(method).label,
            backbone_cfg=first['backbone_cfg'],
            method_config=first.get('method_config'),
            mIoU=dict(_stats(miou), per_seed={str(s): per_seed[s]['mIoU'] for s in seeds}),
            aAcc=dict(_stats([per_seed[s]['aAcc'] for s in seeds]),
                      per_seed={str(s): per_seed[s]['aAcc'] for s in seeds}),
            per_class_IoU={str(s): per_seed[s]['per_class_IoU'] for s in seeds},
            lr=first['lr'],
            backbone_side_lr=first.get('backbone_side_lr'),
            trainable=first['counts'],
            frozen_check=first['frozen_check'],
            time_s={str(s): per_seed[s]['time_s'] for s in seeds})
        if 'train' in first:
            entry['train_mIoU'] = dict(
                _stats([per_seed[s]['train']['mIoU'] for s in seeds]),
                per_seed={str(s): per_seed[s]['train']['mIoU'] for s in seeds})
        if 'robustness' in first:
            rob = {s: per_seed[s]['robustness'] for s in seeds}
            entry['robustness'] = OrderedDict(
                (k, dict(_stats([rob[s][k] for s in seeds], 3 if k == 'rPC' else 2),
                         per_seed={str(s): rob[s][k] for s in seeds}))
                for k in ('mIoU_clean', 'mPC', 'rPC'))
            entry['robustness']['per_seed_detail'] = {str(s): rob[s] for s in seeds}
        if 'frozen' in runs:
            gains = [per_seed[s]['mIoU'] - runs['frozen'][s]['mIoU'] for s in seeds]
            entry['gain_over_head_only'] = dict(
                _stats(gains), per_seed={str(s): round(g, 2) for s, g in zip(seeds, gains)},
                seeds_better=sum(g > 0 for g in gains))
        out[method] = entry
    full_gain = (out['full']['gain_over_head_only']['mean']
                 if 'full' in out and 'frozen' in out else 0)
    if full_gain > 0:
        # How much of what full fine-tuning gains over head-only a method recovers
        # (means over the seeds; the plain 'full' entry, at its lr, is the 100%).
        for method, entry in out.items():
            if method != 'frozen':
                entry['share_of_full_gain'] = round(
                    entry['gain_over_head_only']['mean'] / full_gain, 3)
    return out


def _table(columns) -> PrettyTable:
    """A plain table: a header, one rule under it, ``(name, 'l'|'r')`` columns one
    space apart."""
    table = PrettyTable([name for name, _ in columns], border=True, vrules=VRuleStyle.NONE,
                        hrules=HRuleStyle.HEADER, padding_width=0)
    for name, align in columns:
        table.align[name] = align
    return table


def _lines(table: PrettyTable) -> str:
    return '\n'.join(line.rstrip() for line in table.get_string().splitlines())


def format_table(results: dict, seeds) -> str:
    with_train = any('train_mIoU' in m for res in results.values()
                     for m in res['methods'].values())
    columns = [('backbone', 'l'), ('method', 'l'), ('lr', 'r'), ('mIoU mean±sd', 'r'),
               ('mIoU per seed', 'l'), ('aAcc', 'r'), ('trainable', 'r'),
               ('backbone-side', 'r'), ('gain vs head-only', 'r')]
    if with_train:
        columns.append(('train mIoU', 'r'))
    table = _table(columns)
    for backbone, res in results.items():
        pre = res['pretrain']
        table.add_row([backbone, 'pre-train (A)', '', f"{pre['mIoU']:.2f}", 'task A val',
                       f"{pre['aAcc']:.2f}", '', '', ''] + [''] * with_train)
        for method, m in res['methods'].items():
            per_seed = ' '.join(f'{v:.1f}' for v in m['mIoU']['per_seed'].values())
            gain = ''
            if 'gain_over_head_only' in m and method != 'frozen':
                g = m['gain_over_head_only']
                gain = f"{g['mean']:+.2f} ({g['seeds_better']}/{len(seeds)} seeds)"
                if 'share_of_full_gain' in m and method != 'full':
                    gain += f", {m['share_of_full_gain']:.0%} of full's"
            t = m['trainable']
            table.add_row(
                [backbone, m['label'], f"{m['lr']:.0e}",
                 f"{m['mIoU']['mean']:.2f}±{m['mIoU']['std']:.2f}", per_seed,
                 f"{m['aAcc']['mean']:.2f}", f"{t['trainable']:,}",
                 f"{t['backbone_side_trainable']:,}", gain]
                + ([f"{m['train_mIoU']['mean']:.2f}"] if with_train else []))
    return _lines(table)


def format_robustness_table(results: dict, seeds) -> str:
    """Clean mIoU, mPC and rPC on corrupted task B val images per method."""
    table = _table([('backbone', 'l'), ('method', 'l'), ('clean mIoU', 'r'), ('mPC', 'r'),
                    ('rPC', 'r'), ('rPC per seed', 'l'), ('rPC - full', 'r')])
    for backbone, res in results.items():
        methods = res['methods']
        full = methods.get('full', {}).get('robustness')
        for method, m in methods.items():
            r = m.get('robustness')
            if r is None:
                continue
            per_seed = ' '.join(f'{v:.3f}' for v in r['rPC']['per_seed'].values())
            diff = ('' if full is None or method == 'full'
                    else f"{r['rPC']['mean'] - full['rPC']['mean']:+.3f}")
            table.add_row([backbone, m['label'], f"{r['mIoU_clean']['mean']:.2f}",
                           f"{r['mPC']['mean']:.2f}±{r['mPC']['std']:.2f}",
                           f"{r['rPC']['mean']:.3f}±{r['rPC']['std']:.3f}", per_seed, diff])
    return _lines(table)


def reproduce_command(args) -> str:
    parts = ['python', 'tools/transfer_study.py',
             '--backbones', *args.backbones, '--methods', *args.methods,
             '--iters-pretrain', str(args.iters_pretrain), '--iters', str(args.iters),
             '--batch', str(args.batch), '--size', str(args.size),
             '--seeds', *map(str, args.seeds), '--lr', repr(args.lr),
             *(['--method-lr', *(f'{m}={v!r}' for m, v in args.method_lr.items())]
               if args.method_lr else []),
             '--lr-pretrain', repr(args.lr_pretrain),
             '--num-train', str(args.num_train),
             *(['--num-train-b', str(args.num_train_b)] if args.num_train_b else []),
             '--num-val', str(args.num_val),
             *(['--eval-train'] if args.eval_train else []),
             *(['--robustness', '--corruptions', *args.corruptions,
                '--severities', *map(str, args.severities),
                '--corruption-seed', str(args.corruption_seed)]
               if args.robustness else []),
             '--threads', str(args.threads), '--work-dir', args.work_dir,
             '--out', args.out]
    return shlex.join(parts)


def study_table(results: dict, args) -> str:
    """The results table, and with --robustness the corrupted-val table."""
    table = format_table(results, args.seeds)
    if args.robustness:
        table += ('\n\nCorrupted task B val (protune_mm.Corrupt, '
                  f'{len(args.corruptions)} corruptions x severities '
                  f'{args.severities}):\n' + format_robustness_table(results, args.seeds))
    return table


def study_report(args, command: str, results: dict, table: str, wall: float) -> OrderedDict:
    """The JSON report: command, environment, settings, tasks, results, table."""
    import mmengine
    import mmseg
    import timm
    return OrderedDict(
        tool='tools/transfer_study.py',
        command=command,
        wall_time_s=round(wall, 1),
        finished=datetime.now().isoformat(timespec='seconds'),
        environment=dict(python=platform.python_version(), torch=torch.__version__,
                         mmengine=mmengine.__version__, mmseg=mmseg.__version__,
                         timm=timm.__version__, protune_mm=__version__,
                         threads=args.threads, cpu_count=os.cpu_count()),
        settings=dict(
            iters_pretrain=args.iters_pretrain, lr_pretrain=args.lr_pretrain,
            iters=args.iters, lr=args.lr, batch=args.batch,
            size=args.size, seeds=args.seeds, num_train=args.num_train,
            num_train_b=num_train_b(args),
            num_val=args.num_val, eval_train=args.eval_train,
            pretrain_seed=PRETRAIN_SEED,
            method_lr={m: method_lr(args, m) for m in args.methods},
            optimizer=f'AdamW(lr={args.lr}, weight_decay=0) on trainable parameters '
                      'only; the same lr for every method but those in --method-lr',
            schedule=f'linear warm-up {WARMUP_FRACTION:.0%} of iterations, then cosine '
                     'to 0; same data order and head init per seed for every method',
            data_preprocessor=dict(mean=MEAN, std=STD, size_divisor=32),
            robustness=(dict(corruptions=args.corruptions, severities=args.severities,
                             seed=args.corruption_seed,
                             library='imagecorruptions-imaug')
                        if args.robustness else None)),
        tasks={k: dict(v, classes=list(v['classes'])) for k, v in TASKS.items()},
        head=head_config(['<backbone levels>'], len(TASKS['B']['classes'])),
        results=results,
        table=table.splitlines())
