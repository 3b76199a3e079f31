"""Export a prompt pack (safetensors) from a full or small mmengine checkpoint.

    python tools/export_prompts.py CKPT --out PACK [--what prompts|task]
        [--config CONFIG] [--cfg-options KEY=VALUE ...]

``task`` (default): prompts + neck + heads, everything but the frozen backbone.
``prompts``: the prompt parameters only. The config describing the model is
taken from the checkpoint (mmengine saves its text in ``meta.cfg``) unless
``--config`` is given. No weights are downloaded: the model is only built to
know its structure.
"""
import argparse
import os.path as osp
import sys

import protune_mm  # noqa: E402  (registers modules, the checkpoint allow-list)
from mmengine.config import Config, DictAction  # noqa: E402
from protune_mm.checkpoint import CheckpointError  # noqa: E402
from protune_mm.checkpoint.pack import (PACK_KINDS, export_prompt_pack,  # noqa: E402
                                        read_checkpoint)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('checkpoint', help='mmengine checkpoint (.pth), full or small')
    parser.add_argument('--out', required=True, help='output .safetensors path')
    parser.add_argument('--what', default='task', choices=PACK_KINDS,
                        help='pack kind (default: task)')
    parser.add_argument('--config', help='config of the model; default: the '
                        "checkpoint's meta.cfg")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, as in tools/train.py')
    return parser.parse_args(argv)


def load_config(args, checkpoint: dict) -> Config:
    if args.config:
        cfg = Config.fromfile(args.config)
    else:
        text = (checkpoint.get('meta') or {}).get('cfg')
        if not text:
            raise SystemExit(f'{args.checkpoint} carries no config (meta.cfg): '
                             'pass --config CONFIG')
        cfg = Config.fromstring(text, file_format='.py')
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def build_model(cfg: Config):
    """The model of ``cfg`` in its default scope, weights not initialised."""
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    return MODELS.build(cfg.model)


def main(argv=None):
    args = parse_args(argv)
    if not args.out.endswith('.safetensors'):
        raise SystemExit(f'--out must end in .safetensors (load_from recognises '
                         f'packs by it), got {args.out}')
    try:
        checkpoint = read_checkpoint(args.checkpoint)
        model = build_model(load_config(args, checkpoint))
        pack = export_prompt_pack(model, checkpoint, args.out, kind=args.what)
    except (CheckpointError, FileNotFoundError) as e:
        raise SystemExit(f'error: {e}')
    full = osp.getsize(args.checkpoint)
    size = osp.getsize(pack.path)
    print(f'wrote {pack.path}: {args.what} pack of {pack.metadata["method"]} '
          f'({len(pack.tensors)} tensors, {size:,} bytes = '
          f'{100 * size / max(full, 1):.2f}% of the checkpoint file, {full:,} bytes)')


if __name__ == '__main__':
    main()
