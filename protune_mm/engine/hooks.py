"""Runner hooks: the parameter report, and checkpoints without the frozen backbone.
What a checkpoint holds and what a loaded one may change is decided in
``protune_mm/checkpoint/``; these hooks only call it."""
from mmengine.hooks import Hook

from ..checkpoint.common import find_methods, unwrap_model
from ..checkpoint.pack import check_prompt_pack, load_prompt_pack, the_wrapper
from ..checkpoint.pack_file import PromptPack
from ..checkpoint.policy import ensure_frozen_initialised, mark_checked, strip_frozen
from ..methods import bind_image_regions
from ..registry import HOOKS
from .loader import PACK_META_KEY, PACK_PATH_KEY
from .report import format_report, method_notes, parameter_report, skipped_prompts


@HOOKS.register_module()
class ParamReportHook(Hook):
    """Logs the parameter table (frozen backbone, prompts, neck, heads) once, when
    training starts."""
    priority = 'VERY_LOW'

    def before_train(self, runner):
        model = unwrap_model(runner.model)
        runner.logger.info('Parameters per part:\n' +
                           format_report(parameter_report(model),
                                         skipped_prompts(model), method_notes(model)))


@HOOKS.register_module()
class ImageRegionHook(Hook):
    """Binds VPT pad prompts to the model's data samples when a run starts, so
    that in a padded batch each image's prompt border surrounds its own region
    (``img_shape``), not the batch tensor. Nothing to do for other methods."""

    def before_run(self, runner) -> None:
        bind_image_regions(unwrap_model(runner.model))


def _averaged_models(runner) -> list:
    """Models that hooks keep beside the runner's (EMAHook's ``ema_model``)."""
    return [h.ema_model for h in runner.hooks if getattr(h, 'ema_model', None) is not None]


@HOOKS.register_module()
class PromptCheckpointHook(Hook):
    """Checkpoints without the frozen backbone, and packs in the runner.

    Saving: drops the frozen tensors (each method's recorded frozen set) from the
    checkpoint's ``state_dict`` and, with ``EMAHook``, from its
    ``ema_state_dict``; their identity is recorded in the state dict. Optimizer,
    scheduler and message-hub state stay, so ``--resume`` works: the frozen
    backbone comes from its pretrained source (its ``init_cfg``).

    Loading (``load_from``, ``--resume``): the checkpoint policy (applied to
    every load) fills in the frozen backbone and refuses other frozen weights; a
    prompt pack is also validated here as a whole against the model (keys and
    shapes of neck and heads too) before anything is copied, and refused for
    ``--resume`` (it holds no training state).

    Args:
        save_frozen (bool): keep the full state dict (the usual mmengine
            checkpoint). Default False.
        allow_frozen_mismatch (bool): load packs and small checkpoints trained on
            other frozen weights (with a warning) instead of refusing them.
        prompts (str, optional): a prompts pack loaded on top of the checkpoint
            (``load_from``) before training or testing starts: the prompts of one
            task over the neck and heads of another checkpoint.
    """
    priority = 'LOW'  # after EMAHook, whose ema_state_dict it strips

    def __init__(self, save_frozen: bool = False, allow_frozen_mismatch: bool = False,
                 prompts: str = None):
        self.save_frozen = save_frozen
        self.allow_frozen_mismatch = allow_frozen_mismatch
        self.prompts = prompts
        self._prompts_loaded = False

    def before_run(self, runner) -> None:
        if self.allow_frozen_mismatch:
            for model in [runner.model] + _averaged_models(runner):
                for _, method in find_methods(model):
                    method.allow_frozen_mismatch = True

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.save_frozen:
            return
        model = unwrap_model(runner.model)
        if not find_methods(model):
            return
        strip_frozen(checkpoint['state_dict'], model)
        if 'ema_state_dict' in checkpoint:
            strip_frozen(checkpoint['ema_state_dict'], model, key_prefix='module.')
        checkpoint.setdefault('meta', {})['protune_mm_frozen_dropped'] = True

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.get('meta') or {}
        pack_meta = meta.get(PACK_META_KEY)
        if pack_meta is None:
            return
        if getattr(runner, '_resume', False):
            raise ValueError('a prompt pack holds no training state (optimizer, '
                             'iteration): use it with load_from, not resume')
        if pack_meta['kind'] != 'task':
            return  # a prompts pack as a whole model: the policy refuses it
        # All or nothing: neck and heads are checked before any tensor is copied,
        # against the frozen backbone from its pretrained source; the policy's
        # load pre-hook is told, so it does not check the pack again.
        for name, method in find_methods(runner.model):
            ensure_frozen_initialised(method, name)
        pack = PromptPack(checkpoint['state_dict'], pack_meta, meta.get(PACK_PATH_KEY))
        check_prompt_pack(runner.model, pack, self.allow_frozen_mismatch)
        mark_checked(the_wrapper(runner.model)[1], pack_meta)

    def _load_prompts(self, runner) -> None:
        if self.prompts and not self._prompts_loaded:
            result = load_prompt_pack(runner.model, self.prompts,
                                      self.allow_frozen_mismatch)
            runner.logger.info(f'loaded the prompts pack {self.prompts} on top of the '
                               f'checkpoint ({len(result.keys)} tensors)')
            self._prompts_loaded = True

    def before_train(self, runner) -> None:
        self._load_prompts(runner)

    def before_val(self, runner) -> None:
        self._load_prompts(runner)

    def before_test(self, runner) -> None:
        self._load_prompts(runner)
