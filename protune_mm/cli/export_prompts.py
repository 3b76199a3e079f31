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

from mmengine.config import Config

from protune_mm.checkpoint import CheckpointError, export_prompt_pack, read_checkpoint
from protune_mm.checkpoint.pack_file import PACK_KINDS

from .common import add_cfg_options, exit_on
from .config import build_model, load_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('checkpoint', help='mmengine checkpoint (.pth), full or small')
    parser.add_argument('--out', required=True, help='output .safetensors path')
    parser.add_argument('--what', default='task', choices=PACK_KINDS,
                        help='pack kind (default: task)')
    parser.add_argument('--config', help='config of the model; default: the '
                        "checkpoint's meta.cfg")
    add_cfg_options(parser)
    return parser.parse_args(argv)


def checkpoint_config(args, checkpoint: dict) -> Config:
    """``--config``, else the config text mmengine saved in the checkpoint."""
    if args.config:
        return load_config(args.config, args.cfg_options)
    text = (checkpoint.get('meta') or {}).get('cfg')
    if not text:
        raise SystemExit(f'{args.checkpoint} carries no config (meta.cfg): '
                         'pass --config CONFIG')
    cfg = Config.fromstring(text, file_format='.py')
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def main(argv=None):
    args = parse_args(argv)
    if not args.out.endswith('.safetensors'):
        raise SystemExit(f'--out must end in .safetensors (load_from recognises '
                         f'packs by it), got {args.out}')
    with exit_on(CheckpointError, FileNotFoundError):
        checkpoint = read_checkpoint(args.checkpoint)
        model = build_model(checkpoint_config(args, checkpoint))
        pack = export_prompt_pack(model, checkpoint, args.out, kind=args.what)
    full = osp.getsize(args.checkpoint)
    size = osp.getsize(pack.path)
    print(f'wrote {pack.path}: {args.what} pack of {pack.metadata["method"]} '
          f'({len(pack.tensors)} tensors, {size:,} bytes = '
          f'{100 * size / max(full, 1):.2f}% of the checkpoint file, {full:,} bytes)')


if __name__ == '__main__':
    main()
