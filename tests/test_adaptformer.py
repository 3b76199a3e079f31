"""AdaptFormer on the blocks of tiny transformer backbones (timm ViT, mmseg ViT,
Swin): the method contract, where the adapter acts, recomputation, packs and
refused options."""
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip('mmdet')
pytest.importorskip('mmseg')

from protune_mm import MODELS, AdaptFormer, load_prompt_pack  # noqa: E402
from protune_mm.check import check_method  # noqa: E402
from protune_mm.checkpoint import CheckpointError  # noqa: E402
from protune_mm.checkpoint import pack as pp  # noqa: E402
from protune_mm.methods.adaptformer import _Adapter  # noqa: E402

from test_lora import (BACKBONES, REACHING, X, bare_of, outputs,  # noqa: E402
                       recompute_gradients, same, trained)


def adaptformer(name, seed=0, **options):
    torch.manual_seed(seed)
    return MODELS.build(dict(type='protune_mm.AdaptFormer', backbone=BACKBONES[name],
                             **options))


# -- the method contract ---------------------------------------------------------------
@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_contract_identity_frozen_and_every_adapter_learns(name):
    """check_method: outputs bit-identical to the bare backbone at init, every
    frozen tensor bit-identical after two Adam steps, every adapter tensor with a
    non-zero gradient at the second step (down gets none while up is zero)."""
    result = check_method(dict(type='protune_mm.AdaptFormer', backbone=BACKBONES[name],
                               bottleneck=4))
    assert result.ok, result.failures
    method = adaptformer(name, bottleneck=4)
    assert len(method.prompts) == REACHING[name]
    assert result.trainable == sum(p.numel() for p in method.prompts.parameters())
    assert list(method.backbone.state_dict()) == list(bare_of(method).state_dict())
    assert all(k.startswith('backbone.') for k in method.frozen_keys)


@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_every_adapter_gets_a_gradient_once_up_is_nonzero(name):
    method = trained(adaptformer(name, bottleneck=4))
    method.train()
    sum(o.square().mean() for o in method(X)).backward()
    for key, p in method.prompts.named_parameters():
        assert p.grad is not None and torch.any(p.grad != 0), key
    assert not any(p.grad is not None for p in method.backbone.parameters())


def test_the_adapter_is_added_beside_the_mlp_after_its_layer_scale():
    """One timm block computes x' + ls2(MLP(h)) + s * adapter(h), h = LN2(x'),
    x' = x + ls1(Attn(LN1(x))) (paper Eq. 2-3; the layer scale, here made
    non-trivial, scales the MLP branch only), and keeps no state after the call."""
    backbone = dict(BACKBONES['timm-vit'], model_kwargs=dict(
        depth=3, embed_dim=32, num_heads=2, init_values=0.5))
    torch.manual_seed(0)
    method = trained(MODELS.build(dict(type='protune_mm.AdaptFormer', backbone=backbone,
                                       bottleneck=4, scale=0.3)))
    block = method.backbone.blocks[1]
    ad = method.prompts['blocks_1']
    assert ad.down.weight.shape == (4, 32) and ad.up.weight.shape == (32, 4)
    x = torch.randn(2, 5, 32)
    method.disable()  # the hand computation calls the hooked modules: bare ones
    with torch.no_grad():
        xp = x + block.ls1(block.attn(block.norm1(x)))
        h = block.norm2(xp)
        adapter = F.linear(F.relu(F.linear(h, ad.down.weight, ad.down.bias)),
                           ad.up.weight, ad.up.bias)
        expected = xp + block.ls2(block.mlp(h)) + 0.3 * adapter
        bare = block(x)
        method.enable()
        got = block(x)
    assert not torch.allclose(got, bare)
    assert not torch.allclose(block.ls2.gamma, torch.ones(32))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert all(h_._held is None for h_ in _hooks(method))


def _hooks(method):
    """The method's per-block hook objects."""
    found = {getattr(hook, '__self__', None) for m in method.backbone.modules()
             for hook in m._forward_hooks.values()}
    found = [h for h in found if isinstance(h, _Adapter)]
    assert found
    return found


def test_dropout_acts_in_training_only():
    method = trained(adaptformer('timm-vit', bottleneck=4, dropout=0.5))
    method.train()
    assert not method.backbone.training
    with torch.no_grad():
        a, b = method(X), method(X)
    assert not same(a, b)
    assert same(outputs(method, X), outputs(method, X))


@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_recomputed_blocks_give_adaptformer_the_same_gradients(name):
    # The adapters act inside the frozen blocks, so the default (auto) recomputes
    # them and the hooks run again in the backward; nothing stays held after.
    models, grads = recompute_gradients(
        lambda n, **kw: adaptformer(n, bottleneck=4, **kw), name)
    assert len(grads) == 4 * REACHING[name]
    assert all(h._held is None for model in models for h in _hooks(model))


# -- packs -----------------------------------------------------------------------------
@pytest.mark.parametrize('name', ['mmseg-vit', 'swin'])
def test_a_pack_round_trips_and_other_options_are_refused(tmp_path, name):
    source = trained(adaptformer(name, bottleneck=4))
    expected = outputs(source, X)
    path = pp.save_prompt_pack(pp.make_prompt_pack(source, 'prompts'),
                               str(tmp_path / 'adaptformer.safetensors'))
    target = adaptformer(name, bottleneck=4)  # same frozen weights
    assert not same(outputs(target, X), expected)
    load_prompt_pack(target, path)
    assert same(outputs(target, X), expected)
    # Same tensor shapes, other scale: refused by the method record.
    with pytest.raises(CheckpointError, match='scale'):
        load_prompt_pack(adaptformer(name, bottleneck=4, scale=0.5), path)


def test_method_config_is_resolved():
    a = adaptformer('swin')
    assert a.method_config() == dict(bottleneck=64, scale=0.1, dropout=0.0,
                                     blocks=[0, 1, 2, 3])
    b = adaptformer('swin', blocks=[3, 1], scale=1)
    assert b.method_config()['blocks'] == [1, 3] and b.config.scale == 1.0
    assert sorted(b.prompts) == ['stages_0_blocks_1', 'stages_2_blocks_0']
    assert 'block stages.3.blocks.0' in a.skipped


# -- refused ---------------------------------------------------------------------------
@pytest.mark.parametrize('options, error, match', [
    (dict(bottleneck=0), ValueError, r'AdaptFormer\.bottleneck must be a positive int'),
    (dict(bottleneck=2.5), ValueError, r'AdaptFormer\.bottleneck must be a positive int'),
    (dict(scale=0), ValueError, r'AdaptFormer\.scale must be a number > 0, got 0'),
    (dict(scale='0.1'), ValueError, r'AdaptFormer\.scale must be a number > 0'),
    (dict(dropout=1.0), ValueError, r'AdaptFormer\.dropout must be a float in \[0, 1\)'),
    (dict(dropout=-0.1), ValueError, r'AdaptFormer\.dropout must be a float in \[0, 1\)'),
    (dict(blocks=3), TypeError, r'AdaptFormer\.blocks must be None \(every block\)'),
    (dict(blocks=[]), ValueError, r'AdaptFormer\.blocks is empty'),
    (dict(blocks=[9]), ValueError, r'unknown block index \[9\].*allowed \[0, 4\]'),
    (dict(blocks=[4]), ValueError, r"\['stages\.3\.blocks\.0'\] reach no feature"),
    (dict(bottlenek=4), TypeError, r"unknown option\(s\) \['bottlenek'\]"),
], ids=lambda v: str(v)[:30] if isinstance(v, dict) else '')
def test_bad_options_are_refused(options, error, match):
    with pytest.raises(error, match=match):
        adaptformer('swin', **options)


def test_a_family_without_blocks_is_refused_naming_the_supported_ones():
    with pytest.raises(TypeError, match=r'AdaptFormer needs the transformer blocks.* '
                       r'and ResNet \(ResNet\) has none described: AdaptFormer supports '
                       r'TimmViT, mmseg VisionTransformer, mmdet/mmseg SwinTransformer'):
        AdaptFormer(backbone=dict(type='mmdet.ResNet', depth=18, init_cfg=None))
