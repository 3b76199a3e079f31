"""Parameter counts per part of a model: frozen backbone, prompts, neck, heads."""
from collections import OrderedDict
from typing import Dict

import torch.nn as nn

from ..models.wrapper import find_wrappers, frozen_prefix, wrapper_key_prefix

PARTS = ('frozen backbone', 'prompts', 'backbone (trainable)', 'neck', 'heads')


def part_of(name: str, wrappers: Dict[str, nn.Module]) -> str:
    """Which part the parameter/buffer ``name`` of the model belongs to."""
    for wrapper in wrappers:
        if name.startswith(frozen_prefix(wrapper)):
            return 'frozen backbone'
        if name.startswith(wrapper_key_prefix(wrapper)):
            return 'prompts'
    top = name.split('.', 1)[0]
    if top == 'backbone':
        return 'backbone (trainable)'
    if top in ('neck', 'necks'):
        return 'neck'
    return 'heads'


def parameter_report(model: nn.Module) -> 'OrderedDict[str, dict]':
    """{part: {'total': n, 'trainable': n}} for the parts present in ``model``."""
    wrappers = {n: m for n, m in find_wrappers(model)}
    report = OrderedDict((p, dict(total=0, trainable=0)) for p in PARTS)
    for name, p in model.named_parameters():
        row = report[part_of(name, wrappers)]
        row['total'] += p.numel()
        row['trainable'] += p.numel() if p.requires_grad else 0
    return OrderedDict((k, v) for k, v in report.items() if v['total'])


def format_report(report) -> str:
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
    return '\n'.join(lines)
