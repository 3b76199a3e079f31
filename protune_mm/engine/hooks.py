"""Runner hooks: the parameter report, and checkpoints without the frozen backbone
(small checkpoints and prompt packs)."""
from mmengine.hooks import Hook

from ..models.wrapper import find_wrappers, frozen_prefix
from ..registry import HOOKS
from .param_report import format_report, parameter_report
from .prompt_pack import (FROZEN_SHA_META_KEY, PACK_META_KEY, PromptPack,
                          check_prompt_pack, frozen_identity, strip_ddp_prefix,
                          unwrap_model)


@HOOKS.register_module()
class ParamReportHook(Hook):
    """Logs the parameter table (frozen backbone, prompts, neck, heads) once, when
    training starts."""
    priority = 'VERY_LOW'

    def before_train(self, runner):
        model = unwrap_model(runner.model)
        runner.logger.info('Parameters per part:\n' +
                           format_report(parameter_report(model)))


@HOOKS.register_module()
class PromptCheckpointHook(Hook):
    """Checkpoints without the frozen backbone: saving them, and loading them
    and prompt packs.

    Saving: drops the frozen-backbone tensors from the checkpoints the runner
    saves and records the sha256 identity of the dropped weights in
    ``meta['protune_mm_frozen_sha256']`` (so prompt packs can be exported from
    them). Optimizer, scheduler and message-hub state stay, so ``--resume``
    works: the frozen backbone comes from its pretrained source (its
    ``init_cfg``) and the wrappers accept state dicts without it.

    Loading (``load_from``, ``--resume``, ``runner.load_checkpoint``): when the
    checkpoint lacks the frozen backbone (a small checkpoint or a prompt pack)
    and the model has not been initialised yet (``Runner.test()``/``val()``
    never call ``init_weights``), runs ``model.init_weights()`` first so the
    frozen backbone is the pretrained one. A prompt pack is validated as a whole
    against the model (method, architecture, keys and shapes, frozen identity)
    before anything is copied, and a ``prompts`` pack leaves neck and heads as
    they are. A small checkpoint is refused if the frozen backbone differs from
    the one it was trained with (its recorded identity).

    Args:
        save_frozen (bool): keep the full state dict (the usual mmengine
            checkpoint). Default False.
        allow_frozen_mismatch (bool): load prompt packs and small checkpoints
            trained on other frozen weights (with a warning) instead of refusing
            them. Default False.
    """
    priority = 'LOW'

    def __init__(self, save_frozen: bool = False, allow_frozen_mismatch: bool = False):
        self.save_frozen = save_frozen
        self.allow_frozen_mismatch = allow_frozen_mismatch

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.save_frozen:
            return
        wrappers = find_wrappers(unwrap_model(runner.model))
        if not wrappers:
            return
        state = checkpoint['state_dict']
        identities = {}
        for name, wrapper in wrappers:
            prefix = frozen_prefix(name)
            for key in [k for k in state if k.startswith(prefix)]:
                del state[key]
            identities[name] = frozen_identity(wrapper)
        meta = checkpoint.setdefault('meta', {})
        meta['protune_mm_frozen_dropped'] = True
        meta[FROZEN_SHA_META_KEY] = identities

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        model = unwrap_model(runner.model)
        wrappers = find_wrappers(model)
        if not wrappers:
            return
        meta = checkpoint.get('meta') or {}
        pack_meta = meta.get(PACK_META_KEY)
        state = checkpoint.get('state_dict', checkpoint)
        keys = [strip_ddp_prefix(k) for k in state]
        lacks_frozen = pack_meta is not None or any(
            not any(k.startswith(frozen_prefix(name)) for k in keys)
            for name, _ in wrappers)
        if lacks_frozen and not getattr(model, 'is_init', True):
            runner.logger.info('The checkpoint has no frozen backbone: initialising '
                               'the model (frozen backbone from its pretrained '
                               'source) before loading it')
            model.init_weights()
        if pack_meta is None:
            self._check_small_checkpoint(runner, wrappers, meta, keys)
            return
        if getattr(runner, '_resume', False):
            raise ValueError('a prompt pack holds no training state (optimizer, '
                             'iteration): use it with load_from, not resume')
        pack = PromptPack(state, pack_meta, meta.get('protune_mm_pack_path'))
        remapped, _ = check_prompt_pack(model, pack, self.allow_frozen_mismatch)
        # Hand mmengine a complete state dict: the pack's tensors over the
        # model's current ones, so what the pack lacks (frozen backbone; neck and
        # heads for a prompts pack) stays as it is, without missing-key warnings.
        full = model.state_dict()
        full.update(remapped)
        checkpoint['state_dict'] = full

    def _check_small_checkpoint(self, runner, wrappers, meta, keys) -> None:
        """A small checkpoint must meet the frozen weights it was trained with."""
        recorded = meta.get(FROZEN_SHA_META_KEY) or {}
        for name, wrapper in wrappers:
            prefix = frozen_prefix(name)
            if name not in recorded or any(k.startswith(prefix) for k in keys):
                continue
            sha = frozen_identity(wrapper)
            if sha == recorded[name]:
                continue
            msg = (f'the checkpoint was trained on other frozen weights of '
                   f'{prefix[:-1]}: recorded sha256 {recorded[name][:16]}..., the '
                   f'model has {sha[:16]}... (is its init_cfg the pretrained '
                   'checkpoint used in training?)')
            if not self.allow_frozen_mismatch:
                raise ValueError(msg + '; set PromptCheckpointHook('
                                 'allow_frozen_mismatch=True) to load anyway')
            runner.logger.warning(msg + '; loading anyway')
