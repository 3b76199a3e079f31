"""Adapters of the token / transformer backbone families (issue 13, part B):
mmseg VisionTransformer, BEiT, MAE (token prompts), mmseg MixVisionTransformer,
mmdet PyramidVisionTransformer/V2, mmseg Twins PCPVT/SVT (key/value prompts)."""
import copy

import pytest
import torch
import torch.nn as nn

import protune_mm  # noqa: F401  (registers the methods and adapters)
from protune_mm import MODELS
from protune_mm.check import check_method
from protune_mm.checkpoint import pack as pp

# Tiny configs: 64x64 inputs, a few blocks, narrow widths.
VIT = dict(img_size=64, patch_size=16, embed_dims=32, num_layers=4, num_heads=2)
PYRAMID = dict(num_heads=[1, 2, 4, 8], out_indices=(0, 1, 2, 3))
BACKBONES = {
    'vit': dict(type='mmseg.VisionTransformer', out_indices=(1, 3), final_norm=True,
                **VIT),
    'vit-no-cls': dict(type='mmseg.VisionTransformer', out_indices=(1, 2),
                       with_cls_token=False, **VIT),
    'beit': dict(type='mmseg.BEiT', out_indices=(1, 3), **VIT),
    'mae': dict(type='mmseg.MAE', out_indices=(1, 3), **VIT),
    'mit': dict(type='mmseg.MixVisionTransformer', embed_dims=8,
                num_layers=[1, 1, 1, 1], **PYRAMID),
    'pvt': dict(type='mmdet.PyramidVisionTransformer', embed_dims=8,
                num_layers=[1, 1, 1, 1], pretrain_img_size=64, **PYRAMID),
    'pvtv2': dict(type='mmdet.PyramidVisionTransformerV2', embed_dims=8,
                  num_layers=[1, 1, 1, 1], **PYRAMID),
    'pcpvt': dict(type='mmseg.PCPVT', embed_dims=[8, 16, 32, 64], depths=[1, 1, 1, 1],
                  **PYRAMID),
    'svt': dict(type='mmseg.SVT', embed_dims=[8, 16, 32, 64], depths=[2, 2, 2, 2],
                mlp_ratios=[4, 4, 4, 4], sr_ratios=[8, 4, 2, 1],
                windiow_sizes=[2, 2, 2, 2], **PYRAMID),
}
TOKENS = ('vit', 'vit-no-cls', 'beit', 'mae')
METHODS = {
    'Frozen': {},
    # groups=1: the pyramids' first stage is 8 wide.
    'ProTune': dict(groups=1),
    'VPT': dict(num_tokens=3),
}


def method_cfg(name, method, **kw):
    cfg = dict(type=f'protune_mm.{method}', backbone=copy.deepcopy(BACKBONES[name]),
               **METHODS[method])
    cfg.update(kw)
    return cfg


def build(name, method, seed=0, **kw):
    torch.manual_seed(seed)
    return MODELS.build(method_cfg(name, method, **kw))


def image(b=2, seed=1):
    return torch.randn(b, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


# -- the method contract -------------------------------------------------------------
@pytest.mark.parametrize('method', list(METHODS))
@pytest.mark.parametrize('name', list(BACKBONES))
def test_method_contract(name, method):
    result = check_method(method_cfg(name, method))
    assert result.ok, result.failures
    assert (result.trainable > 0) == (method != 'Frozen')


@pytest.mark.parametrize('name', list(BACKBONES))
def test_vpt_mechanism(name):
    model = build(name, 'VPT')
    if name in TOKENS:
        # Token prompts after CLS, one set per block up to the last returned one.
        assert model.mechanism.name == 'tokens'
        depth = 1 + max(model.backbone.out_indices)
        assert sorted(model.prompts) == [f'block{i}' for i in range(depth)]
    else:
        # Key/value prompts in every spatial-reduction attention.
        assert model.mechanism.name == 'kv'
        assert all(k.startswith('stage') for k in model.prompts)
        with pytest.raises(ValueError, match='VPT.deep must be True'):
            build(name, 'VPT', deep=False)
    # Switched off, the bare backbone exactly (no extra token left anywhere).
    bare = MODELS.build(copy.deepcopy(model.backbone_cfg))
    bare.load_state_dict(model.backbone.state_dict())
    bare.requires_grad_(False)
    bare.eval()  # (mmseg's ViT returns None from train())
    model.eval().disable()
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(model(image()), bare(image())))


def test_svt_prompts_only_global_attention_blocks():
    # SVT alternates locally-grouped (window) and global sub-sampled attention;
    # only the latter take key/value prompts.
    model = build('svt', 'VPT')
    assert sorted(model.prompts) == [f'stage{i}_block1' for i in range(4)]


# -- stages after the last returned one ------------------------------------------------
@pytest.mark.parametrize('name, out_indices, dead', [
    ('vit', (1, ), 2), ('beit', (0, ), 1), ('mit', (0, 1), 2), ('pvtv2', (1, ), 2),
    ('pcpvt', (2, ), 3)])
def test_stages_after_last_output_get_no_prompts(name, out_indices, dead):
    """``dead``: the first ProTune stage that cannot reach a returned feature."""
    kw = dict(backbone=dict(BACKBONES[name], out_indices=out_indices))
    protune = build(name, 'ProTune', **kw)
    assert protune.stage_ids == list(range(dead))
    with pytest.raises(ValueError, match='reaches no feature'):
        build(name, 'ProTune', stages=[dead], **kw)
    vpt = build(name, 'VPT', **kw)
    last = max(out_indices)
    if name in TOKENS:
        assert sorted(vpt.prompts) == [f'block{i}' for i in range(last + 1)]
        assert vpt.skipped
    else:
        assert {int(k[len('stage'):].split('_')[0]) for k in vpt.prompts} == \
            set(range(last + 1))
    assert check_method(dict(method_cfg(name, 'VPT'), **kw)).ok


# -- token prompts on mmseg's ViT: what VPT computes --------------------------------------
def vit_reference(vit, img, prompts, deep):
    """mmseg's VisionTransformer forward written out with VPT's prompt tokens after
    CLS (``prompts[i]`` before layer ``i``: inserted at 0, replaced later if
    ``deep``); returned maps from the patch tokens alone."""
    x, hw = vit.patch_embed(img)
    b, c, p = x.shape[0], x.shape[-1], prompts[0].shape[1]
    x = vit._pos_embeding(torch.cat([vit.cls_token.expand(b, -1, -1), x], 1), hw,
                          vit.pos_embed)
    outs = []
    for i, layer in enumerate(vit.layers):
        if i == 0 or (deep and i < len(prompts)):
            rest = x[:, 1:] if i == 0 else x[:, 1 + p:]
            x = torch.cat([x[:, :1], prompts[i].expand(b, -1, -1), rest], 1)
        x = layer(x)
        if i == len(vit.layers) - 1 and vit.final_norm:
            x = vit.norm1(x)
        if i in vit.out_indices:
            outs.append(x[:, 1 + p:].reshape(b, *hw, c).permute(0, 3, 1, 2))
    return outs


@pytest.mark.parametrize('deep', [True, False])
def test_vit_token_prompts_match_reference(deep):
    model = build('vit', 'VPT', deep=deep, dropout=0.0).eval()
    prompts = [model.prompts[k].prompt for k in sorted(model.prompts)]
    assert len(prompts) == (4 if deep else 1)
    bare = MODELS.build(copy.deepcopy(model.backbone_cfg))  # no hooks
    bare.load_state_dict(model.backbone.state_dict())
    bare.eval()
    with torch.no_grad():
        got = model(image())
        ref = vit_reference(bare, image(), prompts, deep)
    assert len(got) == len(ref) == 2
    for a, b in zip(got, ref):
        assert a.shape == b.shape == (2, 32, 4, 4)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_beit_prompts_get_zero_relative_position_bias():
    model = build('beit', 'VPT', dropout=0.0).eval()
    attn = model.backbone.layers[0].attn
    with torch.no_grad():  # a non-trivial bias (the table starts at zero)
        attn.relative_position_bias_table.normal_()
    extra, n0 = 3, 1 + 16
    x = torch.randn(2, n0 + extra, 32)
    with torch.no_grad():
        got = attn(x)
        # Reference: bias of [CLS, patches] where they are, zero for the prompts.
        table = attn.relative_position_bias_table[attn.relative_position_index.view(-1)]
        known = table.view(n0, n0, -1).permute(2, 0, 1)
        bias = torch.zeros(2, n0 + extra, n0 + extra)
        rows = (slice(0, 1), slice(1 + extra, None))
        for r, kr in zip(rows, (slice(0, 1), slice(1, None))):
            for s, ks in zip(rows, (slice(0, 1), slice(1, None))):
                bias[:, r, s] = known[:, kr, ks]
        qkv_bias = torch.cat([attn.q_bias, torch.zeros_like(attn.v_bias), attn.v_bias])
        q, k, v = nn.functional.linear(x, attn.qkv.weight, qkv_bias).reshape(
            2, -1, 3, 2, 16).permute(2, 0, 3, 1, 4)
        weights = ((q * attn.scale) @ k.transpose(-2, -1) + bias).softmax(-1)
        ref = attn.proj((weights @ v).transpose(1, 2).reshape(2, -1, 32))
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-5)
    # The stock token count takes the stock forward, bit for bit.
    with torch.no_grad():
        assert torch.equal(attn(x[:, :n0]), type(attn).forward(attn, x[:, :n0]))


def test_beit_remove_gives_the_bare_backbone_back():
    model = build('beit', 'VPT').eval()
    attns = [layer.attn for layer in model.backbone.layers]
    assert all('forward' in a.__dict__ for a in attns)
    model.remove()
    assert not any('forward' in a.__dict__ for a in attns)
    bare = MODELS.build(copy.deepcopy(model.backbone_cfg))
    bare.load_state_dict(model.backbone.state_dict())
    bare.requires_grad_(False)
    bare.eval()
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(model(image()), bare(image())))


def test_kv_prompts_are_keys_and_values_of_each_attention():
    model = build('mit', 'VPT', dropout=0.0).eval()
    block = model.backbone.layers[3][1][0]  # sr_ratio 1: norm1 is the key norm
    seen = {}
    block.attn.attn.register_forward_hook(
        lambda m, args, kwargs, out: seen.update(kwargs), with_kwargs=True)
    with torch.no_grad():
        model(image())
    prompt = block.norm1(model.prompts['stage3_block0'].prompt)  # (1, 3, 64)
    key = seen['key']  # (L, B, C): sequence first
    assert key.shape == (3 + 2 * 2, 2, 64)
    assert torch.equal(seen['value'], key)
    torch.testing.assert_close(key[:3], prompt.transpose(0, 1).expand(-1, 2, -1))


# -- prompt pack -----------------------------------------------------------------------
def test_prompt_pack_round_trip_mit_vpt(tmp_path):
    def model(seed):
        holder = nn.Module()
        holder.backbone = build('mit', 'VPT', seed=0, dropout=0.0)
        torch.manual_seed(seed)
        with torch.no_grad():
            for p in holder.backbone.prompts.parameters():
                p.normal_()
        return holder.eval()

    source, target = model(1), model(2)
    with torch.no_grad():
        want = source.backbone(image())
        assert not torch.equal(target.backbone(image())[0], want[0])
    path = str(tmp_path / 'mit_vpt.safetensors')
    pp.save_prompt_pack(pp.make_prompt_pack(source, 'prompts'), path)
    pp.load_prompt_pack(target, path)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(target.backbone(image()), want))
