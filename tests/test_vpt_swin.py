"""VPT-deep prompts on the frozen mmdet / mmseg SwinTransformer (vpt_swin.py)."""
import copy
import pickle

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import protune_mm  # noqa: F401  (registers protune_mm.VPT)
from protune_mm import MODELS
from protune_mm.methods.vpt import vpt_init_bound
from protune_mm.methods.vpt.window import PromptedWindowMSA

SCOPES = ('mmdet', 'mmseg')
WIDTHS = (32, 64, 128, 256)
DEPTHS = (2, 2, 2, 2)


def swin_cfg(scope):
    return dict(type=f'{scope}.SwinTransformer', embed_dims=WIDTHS[0], depths=DEPTHS,
                num_heads=(2, 2, 4, 8), window_size=7, out_indices=(0, 1, 2, 3))


def randomise(module: nn.Module, seed: int = 0):
    """Non-trivial frozen weights: Swin leaves its relative position bias tables
    at zero and LayerNorms at identity until init_weights; make every tensor
    random so that bias/mask handling shows in the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            scale = 0.5 if 'relative_position_bias_table' in name else 0.2
            is_norm_weight = 'norm' in name and name.endswith('.weight')
            p.copy_(torch.randn(p.shape, generator=g) * scale + float(is_norm_weight))


def build(scope, num_tokens=5, deep=True, dropout=0.0, seed=0):
    torch.manual_seed(seed)
    model = MODELS.build(dict(type='protune_mm.VPT', backbone=swin_cfg(scope),
                              num_tokens=num_tokens, deep=deep, dropout=dropout))
    randomise(model.backbone, seed)
    return model


def bare_like(model):
    """The bare Swin with the same frozen weights as ``model.backbone``."""
    bare = MODELS.build(model.backbone_cfg)
    bare.load_state_dict(model.backbone.state_dict())
    bare.eval()  # (Swin's train() returns None)
    return bare


def image(b=2, h=66, w=50, seed=1):
    # A multiple of neither the patch (4) nor the window (7 patches).
    return torch.randn(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def max_diff(outs_a, outs_b):
    return max((a - b).abs().max().item() for a, b in zip(outs_a, outs_b))


@pytest.mark.parametrize('scope', SCOPES)
def test_zero_tokens_is_bare_backbone(scope):
    model = build(scope, num_tokens=0).eval()
    assert len(model.prompts) == 0
    bare = bare_like(model)
    x = image()
    with torch.no_grad():
        out, ref = model(x), bare(x)
    assert [o.shape for o in out] == [r.shape for r in ref]
    assert max_diff(out, ref) <= 1e-6


@pytest.mark.parametrize('scope', SCOPES)
def test_prompts_keep_shapes_and_change_outputs(scope):
    model = build(scope).eval()
    bare = bare_like(model)
    x = image(h=100, w=75)
    with torch.no_grad():
        out, ref = model(x), bare(x)
    # 100x75 -> patches 25x19 -> 13x10 -> 7x5 -> 4x3.
    assert [tuple(o.shape) for o in out] == [tuple(r.shape) for r in ref] == [
        (2, 32, 25, 19), (2, 64, 13, 10), (2, 128, 7, 5), (2, 256, 4, 3)]
    for o, r in zip(out, ref):
        assert torch.isfinite(o).all()
        assert (o - r).abs().max() > 1e-3


@pytest.mark.parametrize('scope', SCOPES)
def test_state_dict_keys_and_pretrained_loading(scope):
    model = build(scope)
    bare = bare_like(model)
    assert list(model.backbone.state_dict()) == list(bare.state_dict())
    prompt_keys = {k for k in model.state_dict() if not k.startswith('backbone.')}
    assert prompt_keys == {f'prompts.stage{i}_block{j}.prompt'
                           for i in range(4) for j in range(DEPTHS[i])}
    for i in range(4):
        for j in range(DEPTHS[i]):
            assert model.prompts[f'stage{i}_block{j}'].prompt.shape == (1, 5, WIDTHS[i])
    # A pretrained Swin checkpoint loads strictly into the inner backbone.
    randomise(bare, seed=7)
    model.backbone.load_state_dict(bare.state_dict(), strict=True)
    for k, v in bare.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[k], v)


@pytest.mark.parametrize('scope', SCOPES)
def test_init_bound(scope):
    model = build(scope, num_tokens=10)
    patch = model.backbone.patch_embed.projection.kernel_size
    assert tuple(patch) == (4, 4)
    for i in range(4):
        v = vpt_init_bound(4, WIDTHS[i])
        for j in range(DEPTHS[i]):
            p = model.prompts[f'stage{i}_block{j}'].prompt
            assert p.abs().max() <= v
            assert p.abs().max() > 0.95 * v  # >= 320 samples of uniform(-v, v)


@pytest.mark.parametrize('scope', SCOPES)
def test_gradients_reach_prompts_only_and_frozen_stays_bit_identical(scope):
    model = build(scope, dropout=0.1).train()
    assert not model.backbone.training
    frozen_before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    assert all(not p.requires_grad for p in model.backbone.parameters())
    optim = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.05)
    outs = model(image())
    targets = [torch.randn_like(o) for o in outs]
    loss = sum(F.mse_loss(o, t) for o, t in zip(outs, targets))
    loss.backward()
    for name, p in model.prompts.named_parameters():
        assert p.grad is not None and p.grad.abs().max() > 0, name
    for name, p in model.backbone.named_parameters():
        assert p.grad is None, name
    prompts_before = {k: v.clone() for k, v in model.prompts.state_dict().items()}
    optim.step()
    for k, v in model.backbone.state_dict().items():
        assert torch.equal(v, frozen_before[k]), k
    for k, v in model.prompts.state_dict().items():
        assert not torch.equal(v, prompts_before[k]), k


def naive_window_attention(w_msa, x, hw, window, shift, prompt=None):
    """Swin (S)W-MSA written out window by window from the paper's definition
    instead of mmdet's tensor tricks (region labels instead of the -100 mask,
    relative offsets from coordinates instead of the index buffer, explicit prompt
    key columns instead of padding): tokens attend to the tokens of
    their window that come from the same region of the unshifted map, plus (VPT)
    to every prompt, with no position bias and no mask for the prompts.

    x: (B, H*W, C) tokens already normalised; prompt: (P, C) normalised or None.
    """
    b, _, c = x.shape
    h, w = hw
    heads = w_msa.num_heads
    hd = c // heads
    hp, wp = -(-h // window) * window, -(-w // window) * window
    grid = F.pad(x.view(b, h, w, c), (0, 0, 0, wp - w, 0, hp - h))
    if shift:
        grid = torch.roll(grid, (-shift, -shift), dims=(1, 2))

    def band(i, size):  # region of a rolled coordinate (mmdet's 3 slices)
        return 0 if i < size - window else (1 if i < size - shift else 2)

    table = w_msa.relative_position_bias_table
    wq, wk, wv = w_msa.qkv.weight.split(c)
    bq, bk, bv = w_msa.qkv.bias.split(c)
    out = torch.zeros_like(grid)
    for n in range(b):
        for y0 in range(0, hp, window):
            for x0 in range(0, wp, window):
                coords = [(y, xx) for y in range(y0, y0 + window)
                          for xx in range(x0, x0 + window)]
                tok = torch.stack([grid[n, y, xx] for y, xx in coords])  # (N, C)
                q = F.linear(tok, wq, bq).view(-1, heads, hd) * w_msa.scale
                k = F.linear(tok, wk, bk).view(-1, heads, hd)
                v = F.linear(tok, wv, bv).view(-1, heads, hd)
                if prompt is not None:
                    pk = F.linear(prompt, wk, bk).view(-1, heads, hd)
                    pv = F.linear(prompt, wv, bv).view(-1, heads, hd)
                ys = torch.tensor([y for y, _ in coords])
                xs = torch.tensor([xx for _, xx in coords])
                region = torch.tensor([(band(y, hp), band(xx, wp)) for y, xx in coords])
                # [i, j]: may token i see token j (same region when shifted)
                allowed = (region[:, None] == region[None]).all(-1) if shift else \
                    torch.ones(len(coords), len(coords), dtype=torch.bool)
                idx = (ys[:, None] - ys[None] + window - 1) * (2 * window - 1) + \
                    (xs[:, None] - xs[None] + window - 1)
                logits = torch.einsum('ihd,jhd->ijh', q, k) + table[idx]
                logits = logits.masked_fill(~allowed[..., None], float('-inf'))
                values = v
                if prompt is not None:  # every token sees every prompt, no bias
                    logits = torch.cat([logits, torch.einsum('ihd,thd->ith', q, pk)], 1)
                    values = torch.cat([v, pv])
                a = logits.softmax(1)  # (queries, keys, heads)
                o = w_msa.proj(torch.einsum('ijh,jhd->ihd', a, values).reshape(-1, c))
                for i, (y, xx) in enumerate(coords):
                    out[n, y, xx] = o[i]
    if shift:
        out = torch.roll(out, (shift, shift), dims=(1, 2))
    return out[:, :h, :w].reshape(b, h * w, c)


@pytest.mark.parametrize('scope', SCOPES)
def test_shifted_window_attention_matches_naive(scope):
    model = build(scope, num_tokens=3).eval()
    bare = bare_like(model)
    block, bare_block = model.backbone.stages[0].blocks[1], bare.stages[0].blocks[1]
    shift = block.attn.shift_size
    assert shift == 3  # odd block: shifted windows (window 7)
    assert isinstance(block.attn.w_msa.forward, PromptedWindowMSA)
    hw = (10, 9)  # padded to 14x14: 4 windows, with padding and wrap-around
    x = torch.randn(1, hw[0] * hw[1], WIDTHS[0],
                    generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        normed = block.norm1(x)
        prompt = block.norm1(model.prompts['stage0_block1'].prompt[0])
        # The reference is right for the bare backbone ...
        ref_bare = naive_window_attention(bare_block.attn.w_msa, normed, hw, 7, shift)
        assert torch.allclose(bare_block.attn(normed, hw), ref_bare, atol=1e-5)
        # ... and with prompts joined to every (shifted) window.
        ref = naive_window_attention(block.attn.w_msa, normed, hw, 7, shift, prompt)
        out = block.attn(normed, hw)
    assert torch.allclose(out, ref, atol=1e-5), (out - ref).abs().max()
    assert (out - ref_bare).abs().max() > 1e-3
    # The unshifted block (no mask) too.
    block0 = model.backbone.stages[0].blocks[0]
    assert block0.attn.shift_size == 0
    with torch.no_grad():
        normed0 = block0.norm1(x)
        prompt0 = block0.norm1(model.prompts['stage0_block0'].prompt[0])
        ref0 = naive_window_attention(block0.attn.w_msa, normed0, hw, 7, 0, prompt0)
        assert torch.allclose(block0.attn(normed0, hw), ref0, atol=1e-5)


def test_batch_items_are_independent():
    model = build('mmdet').eval()
    x = image(b=2, h=64, w=48)
    with torch.no_grad():
        both = model(x)
        one = model(x[1:])
    assert max_diff([o[1:] for o in both], one) <= 1e-5


def test_deep_false_refused():
    with pytest.raises(ValueError, match=r'VPT\.deep'):
        build('mmdet', deep=False)
    # Without prompts there is nothing to refuse.
    assert len(build('mmdet', num_tokens=0, deep=False).prompts) == 0


@pytest.mark.parametrize('scope', SCOPES)
def test_deepcopy_and_pickle_keep_own_prompts(scope):
    model = build(scope).eval()
    x = image(b=1, h=64, w=48)
    with torch.no_grad():
        ref = model(x)
        for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
            assert max_diff(clone(x), ref) == 0
            # The clone's attention reads the clone's prompts, not the original's.
            fwd = clone.backbone.stages[2].blocks[1].attn.w_msa.forward
            assert fwd.method is clone and fwd.key == 'stage2_block1'
            assert fwd.attn is clone.backbone.stages[2].blocks[1].attn.w_msa
            # (random: a constant shift would be removed by norm1)
            g = torch.Generator().manual_seed(4)
            noise = torch.randn(1, 5, WIDTHS[0], generator=g)
            clone.prompts['stage0_block0'].prompt.add_(noise)
            assert max_diff(clone(x), ref) > 1e-3
            assert max_diff(model(x), ref) == 0
