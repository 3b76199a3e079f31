"""LoRA on the blocks of tiny transformer backbones (timm ViT, mmseg ViT, Swin):
the method contract, merging, packs and refused options."""
import copy

import pytest
import torch

pytest.importorskip('mmdet')
pytest.importorskip('mmseg')

from protune_mm import MODELS, LoRA, load_prompt_pack  # noqa: E402
from protune_mm.check import check_method  # noqa: E402
from protune_mm.checkpoint import CheckpointError, frozen_identity  # noqa: E402
from protune_mm.checkpoint import pack as pp  # noqa: E402
from protune_mm.methods.lora import TARGETS  # noqa: E402

BACKBONES = {
    'timm-vit': dict(type='protune_mm.TimmViT', model_name='vit_tiny_patch16_224',
                     num_stages=3, model_kwargs=dict(depth=3, embed_dim=32, num_heads=2)),
    # out_indices=(1, ): layer 2 reaches no returned feature.
    'mmseg-vit': dict(type='mmseg.VisionTransformer', img_size=64, patch_size=16,
                      embed_dims=32, num_layers=3, num_heads=2, out_indices=(1, )),
    # out_indices=(0, 1, 2): stage 3's block reaches none.
    'swin': dict(type='mmdet.SwinTransformer', embed_dims=16, depths=(2, 1, 1, 1),
                 num_heads=(1, 1, 1, 1), window_size=2, out_indices=(0, 1, 2),
                 init_cfg=None),
}
# Reaching blocks of each (every other one is skipped by default).
REACHING = {'timm-vit': 3, 'mmseg-vit': 2, 'swin': 4}
ALL = list(TARGETS)


def lora(name, seed=0, **options):
    torch.manual_seed(seed)
    return MODELS.build(dict(type='protune_mm.LoRA', backbone=BACKBONES[name], **options))


def bare_of(method):
    """The bare backbone with the method's frozen weights, frozen as the method
    freezes it (requires_grad alone can change torch MultiheadAttention's path)."""
    bare = MODELS.build(copy.deepcopy(method.backbone_cfg))
    bare.load_state_dict(method.backbone.state_dict())
    bare.requires_grad_(False)
    bare.eval()  # (mmdet/mmseg train() return None: no chaining)
    return bare


def outputs(model, x):
    model.eval()
    with torch.no_grad():
        return [o.clone() for o in model(x)]


def same(a, b):
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def trained(method, seed=1):
    """Non-zero updates (B starts at zero), seed-specific."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in method.prompts.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
    return method


X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


# -- the method contract ---------------------------------------------------------------
@pytest.mark.parametrize('targets', [None, ALL], ids=['default', 'all'])
@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_contract_identity_frozen_and_every_update_learns(name, targets):
    """check_method: outputs bit-identical to the bare backbone at init, every
    frozen tensor bit-identical after two Adam steps, and every A and B with a
    non-zero gradient at the second step (A gets none while B is zero)."""
    options = {} if targets is None else dict(targets=targets)
    result = check_method(dict(type='protune_mm.LoRA', backbone=BACKBONES[name],
                               **options))
    assert result.ok, result.failures
    method = lora(name, **options)
    per_block = len(targets or ['qkv'])
    assert len(method.prompts) == REACHING[name] * per_block
    assert result.trainable == sum(p.numel() for p in method.prompts.parameters())
    # The inner backbone keeps its stock module tree and state-dict keys.
    assert list(method.backbone.state_dict()) == list(bare_of(method).state_dict())
    assert all(k.startswith('backbone.') for k in method.frozen_keys)


@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_every_update_gets_a_gradient_once_b_is_nonzero(name):
    method = trained(lora(name, targets=ALL))
    method.train()
    sum(o.square().mean() for o in method(X)).backward()
    for key, p in method.prompts.named_parameters():
        assert p.grad is not None and torch.any(p.grad != 0), key
    assert not any(p.grad is not None for p in method.backbone.parameters())


def test_the_update_is_b_a_x_times_alpha_over_rank():
    """One target linear computes W x + b + B A x * alpha / rank."""
    method = trained(lora('timm-vit', rank=4, alpha=2))
    qkv = method.backbone.blocks[0].attn.qkv
    update = method.prompts['blocks_0_qkv']
    assert update.A.shape == (4, 32) and update.B.shape == (96, 4)
    x = torch.randn(5, 32)
    with torch.no_grad():
        expected = qkv.weight @ x.T + qkv.bias[:, None] + (update.B @ update.A @ x.T) * 0.5
        torch.testing.assert_close(qkv(x), expected.T, rtol=1e-5, atol=1e-6)


def test_dropout_acts_in_training_only():
    method = trained(lora('timm-vit', dropout=0.5))
    method.train()
    assert not method.backbone.training  # the frozen backbone stays in eval
    with torch.no_grad():
        a, b = method(X), method(X)
    assert not same(a, b)
    assert same(outputs(method, X), outputs(method, X))


# -- merging ---------------------------------------------------------------------------
@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_merged_computes_the_same_with_stock_modules_and_leaves_the_original(name):
    method = trained(lora(name, targets=ALL, alpha=16))
    frozen = {k: v.clone() for k, v in method.frozen_state_dict().items()}
    sha = frozen_identity(method)
    expected = outputs(method, X)

    merged = method.merged()
    assert type(merged) is type(method.backbone)
    assert sorted(merged.state_dict()) == sorted(frozen)  # stock keys
    for m in merged.modules():
        assert not m._forward_pre_hooks and not m._forward_hooks
        assert 'forward' not in m.__dict__
    got = outputs(merged, X)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # Folded: the target weights moved, nothing else did.
    changed = {k for k, v in merged.state_dict().items() if not torch.equal(v, frozen[k])}
    assert len(changed) == len(method.prompts)
    # The original: frozen tensors bit-identical, still adapted, still trains.
    assert all(torch.equal(v, method.frozen_state_dict()[k]) for k, v in frozen.items())
    assert frozen_identity(method) == sha
    assert same(outputs(method, X), expected)
    assert all(p.requires_grad for p in method.prompts.parameters())


def test_merged_of_a_disabled_or_removed_method_is_the_bare_backbone():
    method = trained(lora('swin'))
    ref = outputs(bare_of(method), X)
    method.disable()
    assert same(outputs(method.merged(), X), ref)
    method.enable()
    method.remove()
    assert same(outputs(method.merged(), X), ref)


# -- packs -----------------------------------------------------------------------------
@pytest.mark.parametrize('name', ['mmseg-vit', 'swin'])
def test_a_pack_round_trips_and_other_options_are_refused(tmp_path, name):
    source = trained(lora(name, targets=['qkv', 'fc1'], rank=4))
    expected = outputs(source, X)
    path = pp.save_prompt_pack(pp.make_prompt_pack(source, 'prompts'),
                               str(tmp_path / 'lora.safetensors'))
    target = lora(name, targets=['qkv', 'fc1'], rank=4)  # same frozen weights
    assert not same(outputs(target, X), expected)
    load_prompt_pack(target, path)
    assert same(outputs(target, X), expected)
    # Same tensor shapes, other scale: refused by the method record.
    with pytest.raises(CheckpointError, match='alpha'):
        load_prompt_pack(lora(name, targets=['qkv', 'fc1'], rank=4, alpha=4), path)
    with pytest.raises(CheckpointError, match='targets'):
        load_prompt_pack(lora(name, targets=['qkv', 'fc2'], rank=4), path)


def test_method_config_is_resolved():
    a = lora('swin')
    assert a.method_config() == dict(rank=8, alpha=8.0, dropout=0.0, targets=['qkv'],
                                     blocks=[0, 1, 2, 3])
    b = lora('swin', targets=('fc2', 'qkv', 'qkv'), blocks=[3, 1], alpha=8)
    assert b.method_config()['targets'] == ['qkv', 'fc2']
    assert b.method_config()['blocks'] == [1, 3]
    assert sorted(b.prompts) == ['stages_0_blocks_1_fc2', 'stages_0_blocks_1_qkv',
                                 'stages_2_blocks_0_fc2', 'stages_2_blocks_0_qkv']
    assert 'block stages.3.blocks.0' in a.skipped


# -- refused ---------------------------------------------------------------------------
@pytest.mark.parametrize('options, error, match', [
    (dict(rank=0), ValueError, r'LoRA\.rank must be a positive int, got 0'),
    (dict(rank=2.5), ValueError, r'LoRA\.rank must be a positive int'),
    (dict(alpha=0), ValueError, r'LoRA\.alpha must be a number > 0'),
    (dict(alpha='8'), ValueError, r'LoRA\.alpha must be a number > 0'),
    (dict(dropout=1.0), ValueError, r'LoRA\.dropout must be a float in \[0, 1\)'),
    (dict(targets='qkv'), ValueError,
     r"LoRA\.targets must be a non-empty list of names among \['qkv', 'proj', 'fc1', "
     r"'fc2'\], got 'qkv'"),
    (dict(targets=['q', 'v']), ValueError, r"LoRA\.targets .*among \['qkv'"),
    (dict(targets=[]), ValueError, r'LoRA\.targets must be a non-empty list'),
    (dict(blocks=3), TypeError, r'LoRA\.blocks must be None \(every block\) or a list'),
    (dict(blocks=[]), ValueError, r'LoRA\.blocks is empty'),
    (dict(blocks=[9]), ValueError, r'unknown block index \[9\].*allowed \[0, 4\]'),
    (dict(blocks=[4]), ValueError, r"\['stages\.3\.blocks\.0'\] reach no feature"),
    (dict(rnak=4), TypeError, r"unknown option\(s\) \['rnak'\]"),
], ids=lambda v: str(v)[:30] if isinstance(v, dict) else '')
def test_bad_options_are_refused(options, error, match):
    with pytest.raises(error, match=match):
        lora('swin', **options)


@pytest.mark.parametrize('backbone, named', [
    (dict(type='mmdet.ResNet', depth=18, init_cfg=None), r'ResNet \(ResNet\)'),
    (dict(type='mmseg.BEiT', img_size=64, patch_size=16, embed_dims=32, num_layers=2,
          num_heads=2, out_indices=(1, )), r'BEiT \(BEiT\)'),
], ids=['resnet', 'beit'])
def test_a_family_without_blocks_is_refused_naming_the_supported_ones(backbone, named):
    with pytest.raises(TypeError, match=r'LoRA needs the transformer blocks.* and '
                       + named + r' has none described: LoRA supports TimmViT, mmseg '
                       r'VisionTransformer, mmdet/mmseg SwinTransformer'):
        LoRA(backbone=backbone)


def test_options_are_checked_before_the_backbone_is_built():
    with pytest.raises(ValueError, match=r'LoRA\.rank must be a positive int'):
        LoRA(backbone=dict(type='mmdet.NoSuchNet'), rank=0)


def test_dropout_on_fused_attention_weights_is_refused():
    # mmseg's ViT attention is torch's MultiheadAttention: the update goes into
    # the weight for the call, so there is no input to drop out.
    with pytest.raises(ValueError, match=r"LoRA\.dropout must be 0 with targets "
                       r"\['proj', 'qkv'\] on VisionTransformer"):
        lora('mmseg-vit', targets=ALL, dropout=0.1)
    assert lora('mmseg-vit', targets=['fc1', 'fc2'], dropout=0.1).config.dropout == 0.1


def recompute_gradients(build, name):
    """A trained method built by ``build(name, **kw)`` with the default (auto)
    recomputation of its frozen blocks and its copy on plain autograd
    (``memory_efficient=False``): both models and their gradients, checked equal
    exactly (the backward recomputes the same ops) and nonzero."""
    from protune_mm.ops.recompute import recomputed_blocks
    rec = trained(build(name))
    plain = build(name, memory_efficient=False)
    plain.load_state_dict(rec.state_dict())
    assert rec.recompute and len(recomputed_blocks(rec.backbone)) == REACHING[name]
    assert not recomputed_blocks(plain.backbone)
    x = torch.randn(2, 3, 64, 64)
    grads = []
    for model in (rec, plain):
        model.train()
        model.zero_grad()
        sum((o * torch.linspace(-1, 1, o.numel()).view_as(o)).square().sum()
            for o in model(x)).backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.requires_grad})
    assert sorted(grads[0]) == sorted(grads[1])
    for n, g in grads[1].items():
        assert g.abs().sum() > 0, n
        torch.testing.assert_close(grads[0][n], g, rtol=0, atol=0, msg=n)
    return (rec, plain), grads[0]


@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_recomputed_blocks_give_lora_the_same_gradients(name):
    # LoRA acts inside the frozen blocks, so the default (auto) recomputes them and
    # its updates run again in the backward.
    _, grads = recompute_gradients(lambda n, **kw: lora(n, targets=ALL, **kw), name)
    assert len(grads) == 8 * REACHING[name]
