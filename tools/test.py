"""Test (and evaluate) a prompt-tuned detector or segmentor.

Same command line as mmdet's / mmseg's ``tools/test.py``; CHECKPOINT may be

- a full mmengine checkpoint (``PromptCheckpointHook(save_frozen=True)`` or any
  stock one),
- a small checkpoint of this project (frozen backbone dropped): the frozen
  backbone is loaded from its pretrained source (the inner backbone's
  ``init_cfg``) before the checkpoint, and must be the one it was trained with,
- a task pack (``.safetensors``, see ``tools/export_prompts.py``), checked
  against the model before it is loaded.

``--prompts PACK`` loads a prompts-only pack on top of CHECKPOINT (the prompts of
one task over the neck and heads of CHECKPOINT); a prompts-only pack given as
CHECKPOINT is refused, since the neck and heads would stay at their random init.
A checkpoint or pack that cannot be read or does not fit is one line naming it.

``--out``: mmdet configs dump the raw predictions to a ``.pkl`` file (as mmdet's
test.py); mmseg configs save the predicted maps as PNGs into that directory (as
mmseg's test.py).
"""
import sys

from protune_mm.cli.common import check_data, setup_cpu_distributed
from protune_mm.cli.test import (add_output, build_runner, parse_args,  # noqa: F401
                                 setup_cfg, trigger_visualization_hook)


def main(argv=None):
    args = parse_args(argv)
    try:
        cfg = setup_cfg(args)
        check_data(cfg, splits=('test', ))
        setup_cpu_distributed(cfg)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'error: {e}')
    from protune_mm.checkpoint import CheckpointError
    runner = build_runner(cfg)
    try:
        return runner.test()
    except CheckpointError as e:
        sys.exit(f'error: {e}')


if __name__ == '__main__':
    main()
