"""Parameter counts per part of a model: frozen backbone, prompts, neck, heads."""
from collections import OrderedDict

import torch.nn as nn

from ..checkpoint.common import find_methods, frozen_keys, key_prefix

PARTS = ('frozen backbone', 'prompts', 'backbone (trainable)', 'neck', 'heads')


def parameter_report(model: nn.Module) -> 'OrderedDict[str, dict]':
    """{part: {'total': n, 'trainable': n}} for the parts present in ``model``.

    'frozen backbone' is the methods' recorded frozen sets; 'prompts' is what
    the methods add (wherever it lives, inside the backbone's module tree too)."""
    frozen = set(frozen_keys(model))
    prefixes = tuple(key_prefix(n) for n, _ in find_methods(model))
    report = OrderedDict((p, dict(total=0, trainable=0)) for p in PARTS)
    for name, p in model.named_parameters():
        top = name.split('.', 1)[0]
        if name in frozen:
            part = 'frozen backbone'
        elif prefixes and name.startswith(prefixes):
            part = 'prompts'
        elif top == 'backbone':
            part = 'backbone (trainable)'
        elif top in ('neck', 'necks'):
            part = 'neck'
        else:
            part = 'heads'
        report[part]['total'] += p.numel()
        report[part]['trainable'] += p.numel() if p.requires_grad else 0
    return OrderedDict((k, v) for k, v in report.items() if v['total'])


def skipped_prompts(model: nn.Module) -> list:
    """'<method prefix>: <target>: <reason>' of prompts not created because they
    could not reach a returned feature."""
    return [f'{n or "<model>"}: {target}: {reason}'
            for n, m in find_methods(model) for target, reason in m.skipped.items()]


def method_notes(model: nn.Module) -> list:
    """What else a method costs beyond its parameters (e.g. VPT pad prompts'
    larger input), one line each."""
    return [f'{n or "<model>"}: {note}' for n, m in find_methods(model)
            for note in m.report_notes()]


def format_report(report, skipped=(), notes=()) -> str:
    total = sum(r['total'] for r in report.values())
    trainable = sum(r['trainable'] for r in report.values())
    backbone = sum(r['total'] for k, r in report.items() if 'backbone' in k)
    lines = [f"{'part':<22}{'params':>14}{'trainable':>14}{'% of model':>12}"]
    for part, r in report.items():
        lines.append(f"{part:<22}{r['total']:>14,}{r['trainable']:>14,}"
                     f"{100 * r['total'] / max(total, 1):>11.2f}%")
    lines.append(f"{'total':<22}{total:>14,}{trainable:>14,}"
                 f"{100 * trainable / max(total, 1):>10.2f}% trainable")
    if 'prompts' in report and backbone:
        lines.append(f"prompts are {100 * report['prompts']['total'] / backbone:.2f}% "
                     'of the backbone parameters')
    lines += [f'no prompt at {s}' for s in skipped]
    lines += list(notes)
    return '\n'.join(lines)
