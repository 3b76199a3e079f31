"""Parameters per part of a config's model, and the size of its prompt packs.

    python tools/param_report.py CONFIG [--cfg-options KEY=VALUE ...]

Builds the model without initialising it (no pretrained weights are read or
downloaded), prints the parameter table (frozen backbone, prompts, neck, heads)
with the trainable share, and the bytes of tensor data in each prompt pack kind
next to those of a full checkpoint.
"""
import argparse

from protune_mm import find_wrappers, format_report, pack_nbytes, parameter_report
from protune_mm.engine import method_notes, skipped_prompts

from .common import add_cfg_options
from .config import build_model, load_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='config file (or mmdet::, mmseg::, protune_mm:: '
                        'path)')
    add_cfg_options(parser)
    return parser.parse_args(argv)


def human(n: int) -> str:
    for unit in ('B', 'KB', 'MB', 'GB'):
        if n < 1024 or unit == 'GB':
            return f'{n:.1f} {unit}' if unit != 'B' else f'{n} B'
        n /= 1024


def format_sizes(sizes: dict) -> str:
    full = max(sizes['full'], 1)
    lines = [f"{'checkpoint':<22}{'bytes':>16}{'':>12}{'% of full':>12}"]
    for name, label in (('prompts', 'prompts pack'), ('task', 'task pack'),
                        ('full', 'full checkpoint')):
        lines.append(f'{label:<22}{sizes[name]:>16,}{human(sizes[name]):>12}'
                     f'{100 * sizes[name] / full:>11.2f}%')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    model = build_model(load_config(args.config, args.cfg_options))
    print(f'Parameters per part of {args.config}:')
    print(format_report(parameter_report(model), skipped_prompts(model),
                        method_notes(model)))
    if not find_wrappers(model):
        print('\nNo protune_mm backbone wrapper in this model: no prompt packs.')
        return
    print('\nTensor bytes of each pack kind (parameters and buffers, '
          'numel * element_size):')
    print(format_sizes(pack_nbytes(model)))


if __name__ == '__main__':
    main()
