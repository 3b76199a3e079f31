"""Checks that fail loudly (RuntimeError): trainable parameter counts per method, and
backbones equal to the checkpoint bit for bit."""
import torch

from .variants import METHODS


def count_params(model, method: str) -> dict:
    """Trainable / total parameter counts, checked against what ``method`` implies
    and against protune_mm's own parameter report."""
    from protune_mm import parameter_report
    n = lambda ps: sum(p.numel() for p in ps)  # noqa: E731
    backbone = model.backbone
    counts = dict(
        total=n(model.parameters()),
        trainable=n(p for p in model.parameters() if p.requires_grad),
        backbone_side_trainable=n(p for p in backbone.parameters() if p.requires_grad),
        head_trainable=n(p for p in model.decode_head.parameters() if p.requires_grad),
        head_total=n(model.decode_head.parameters()))
    if METHODS[method][1] is None:
        counts['backbone_total'] = n(backbone.parameters())
        counts['prompts'] = 0
        expected_backbone = counts['backbone_total']
    else:
        counts['backbone_total'] = n(backbone.backbone.parameters())
        counts['prompts'] = n(backbone.prompts.parameters())
        expected_backbone = counts['prompts']
        frozen_trainable = n(p for p in backbone.backbone.parameters() if p.requires_grad)
        report = parameter_report(model)
        prompts_reported = report.get('prompts', {}).get('trainable', 0)
        if frozen_trainable or report['frozen backbone']['trainable'] \
                or prompts_reported != counts['prompts']:
            raise RuntimeError(
                f'{method}: {frozen_trainable} trainable parameters inside the frozen '
                f'backbone; parameter_report: {dict(report)}, prompts counted here: '
                f"{counts['prompts']}")
    if method == 'frozen' and counts['backbone_side_trainable'] != 0:
        raise RuntimeError(f"head-only has {counts['backbone_side_trainable']} "
                           'trainable backbone-side parameters, expected 0')
    if method in ('protune', 'vpt') and not counts['prompts']:
        raise RuntimeError(f'{method}: no prompt parameters')
    if counts['backbone_side_trainable'] != expected_backbone \
            or counts['head_trainable'] != counts['head_total'] \
            or counts['trainable'] != counts['backbone_side_trainable'] + counts['head_trainable']:
        raise RuntimeError(f'{method}: unexpected trainable parameter counts {counts} '
                           f'(expected {expected_backbone} on the backbone side)')
    counts['prompts_pct_of_backbone'] = round(100 * counts['prompts'] /
                                              counts['backbone_total'], 3)
    return counts


def inner_backbone(model, method: str):
    return model.backbone if METHODS[method][1] is None else model.backbone.backbone


def check_equal(module, reference: dict, what: str) -> int:
    """Raise unless ``module.state_dict()`` (parameters and buffers) equals
    ``reference`` bit for bit; returns the number of tensors compared."""
    state = module.state_dict()
    if set(state) != set(reference):
        raise RuntimeError(f'{what}: keys differ from the checkpoint: missing '
                           f'{sorted(set(reference) - set(state))[:5]}, unexpected '
                           f'{sorted(set(state) - set(reference))[:5]}')
    try:
        # rtol=atol=0: bit for bit; dtypes and shapes must match too.
        torch.testing.assert_close(dict(state), dict(reference), rtol=0, atol=0)
    except AssertionError as e:
        raise RuntimeError(f'{what}: differs from the checkpoint: '
                           + ' '.join(str(e).split())) from None
    return len(state)
