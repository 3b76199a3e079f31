"""Recomputation of frozen transformer blocks (``recompute``, ops/recompute.py)
and the ``memory_efficient`` switch: with recomputation on, a prompt method on
timm ViT, mmseg ViT and Swin computes what it computes with plain autograd (same
outputs, same prompt gradients, frozen tensors untouched) while autograd keeps
less; ``remove()`` gives the plain forward back."""
import time

import pytest
import torch

import protune_mm  # noqa: F401  (registers the adapters)
import protune_mm.ops.recompute as recompute_mod
from protune_mm import MODELS, VPT, Frozen, ProTune
from protune_mm.engine import method_notes
from protune_mm.ops.recompute import recomputed_blocks

BACKBONES = {
    'timm-vit': dict(type='protune_mm.TimmViT', model_name='vit_tiny_patch16_224',
                     num_stages=3, model_kwargs=dict(depth=3, embed_dim=32, num_heads=2,
                                                     init_values=0.5)),
    # Two returned layers: VPT's tokens are carried across a returned layer by
    # the adapter's stateful hooks.
    'mmseg-vit': dict(type='mmseg.VisionTransformer', img_size=64, patch_size=16,
                      embed_dims=32, num_layers=3, num_heads=2, out_indices=(0, 1)),
    'swin': dict(type='mmdet.SwinTransformer', embed_dims=16, depths=(2, 1, 1, 1),
                 num_heads=(1, 1, 1, 1), window_size=2, out_indices=(0, 1, 2),
                 init_cfg=None),
}
METHODS = {
    'protune': (ProTune, dict(groups=2, se_ratio=2)),
    # Prompt dropout on: inside Swin's blocks it is recomputed with the first
    # run's random state.
    'vpt': (VPT, dict(num_tokens=3, deep=True, dropout=0.2)),
}
CASES = [(b, m) for b in sorted(BACKBONES) for m in sorted(METHODS)]
X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def _build(backbone, method, seed=0, **kwargs):
    cls, options = METHODS[method]
    torch.manual_seed(seed)
    model = cls(backbone=BACKBONES[backbone], **options, **kwargs)
    model.init_weights()
    with torch.no_grad():  # non-zero ProTune scales: every prompt gets a gradient
        for name, p in model.prompts.named_parameters():
            if name.endswith('scale'):
                p.copy_(torch.rand(p.shape) * 0.5 + 0.1)
    return model.train()


def _pair(backbone, method):
    """(plain autograd, recomputed) methods holding identical tensors."""
    plain = _build(backbone, method, recompute=False)
    rec = _build(backbone, method, recompute=True)
    rec.load_state_dict(plain.state_dict())
    assert not plain.recompute and rec.recompute and recomputed_blocks(rec.backbone)
    assert not recomputed_blocks(plain.backbone)
    return plain, rec


def _outputs(model, x=X):
    out = model(x)
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _loss(outputs):
    # A loss whose gradient differs per element (a plain sum has a constant one).
    return sum((o * torch.linspace(-1, 1, o.numel()).view_as(o)).square().sum()
               for o in outputs)


def _run(model, seed=3):
    torch.manual_seed(seed)  # the same prompt dropout masks in both models
    outputs = _outputs(model)
    model.zero_grad()
    _loss(outputs).backward()
    grads = {n.removeprefix('_orig_mod.'): p.grad.clone()
             for n, p in model.named_parameters() if p.requires_grad}
    return outputs, grads


@pytest.mark.parametrize('backbone,method', CASES)
def test_recompute_gives_the_same_outputs_and_prompt_gradients(backbone, method):
    plain, rec = _pair(backbone, method)
    out_p, grads_p = _run(plain)
    out_r, grads_r = _run(rec)
    assert len(out_p) == len(out_r)
    for a, b in zip(out_p, out_r):
        assert torch.equal(a, b)
    assert sorted(grads_p) == sorted(grads_r) and grads_p
    for name, g in grads_p.items():
        assert g.abs().sum() > 0, name
        # The backward recomputes the same ops: on CPU the gradients are bit-identical.
        torch.testing.assert_close(grads_r[name], g, rtol=0, atol=0, msg=name)
    # No frozen tensor got a gradient.
    assert all(p.grad is None for p in rec.backbone.parameters())


@pytest.mark.parametrize('backbone', sorted(BACKBONES))
def test_protune_at_init_is_the_bare_backbone_with_recompute(backbone):
    torch.manual_seed(0)
    rec = ProTune(backbone=BACKBONES[backbone], groups=2, se_ratio=2, recompute=True)
    rec.init_weights()
    # Frozen as the method's (torch's MultiheadAttention takes its fused path
    # only where nothing requires grad).
    bare = MODELS.build(BACKBONES[backbone]).requires_grad_(False)
    bare.load_state_dict(rec.backbone.state_dict())
    bare.eval()
    rec.train()
    for a, b in zip(_outputs(rec), _outputs(bare)):
        assert torch.equal(a, b)


@pytest.mark.parametrize('backbone,method', CASES)
def test_frozen_tensors_unchanged_by_training_steps(backbone, method):
    rec = _build(backbone, method, recompute=True)
    frozen = {k: v.clone() for k, v in rec.frozen_state_dict().items()}
    prompts = {k: v.clone() for k, v in rec.prompts.state_dict().items()}
    optim = torch.optim.AdamW([p for p in rec.parameters() if p.requires_grad], lr=1e-2)
    for step in range(2):
        optim.zero_grad()
        _loss(_outputs(rec)).backward()
        optim.step()
    for k, v in rec.frozen_state_dict().items():
        assert torch.equal(v, frozen[k]), k
    assert any(not torch.equal(v, prompts[k]) for k, v in rec.prompts.state_dict().items())


@pytest.mark.parametrize('backbone,method', CASES)
def test_remove_restores_the_plain_forward(backbone, method):
    rec = _build(backbone, method, recompute=True)
    keys = sorted(rec.backbone.state_dict())
    blocks = [s.block for s in rec.adapter.block_sites()]
    rec.disable()
    assert not recomputed_blocks(rec.backbone)
    rec.enable()
    assert recomputed_blocks(rec.backbone)
    rec.remove()
    assert not recomputed_blocks(rec.backbone)
    assert all('forward' not in b.__dict__ for b in blocks)
    assert sorted(rec.backbone.state_dict()) == keys  # stock keys throughout
    bare = MODELS.build(BACKBONES[backbone]).requires_grad_(False)
    bare.load_state_dict(rec.backbone.state_dict())
    bare.eval()
    with torch.no_grad():
        for a, b in zip(_outputs(rec), _outputs(bare)):
            assert torch.equal(a, b)


def _saved_bytes(model, x=X) -> int:
    """Bytes autograd keeps for the backward of one forward (outside the
    checkpoints, which keep their own inputs through these hooks too)."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        _outputs(model, x)
    return total


@pytest.mark.parametrize('backbone,method', CASES)
def test_recompute_keeps_less_for_the_backward(backbone, method):
    plain, rec = _pair(backbone, method)
    torch.manual_seed(0)
    kept_plain = _saved_bytes(plain)
    torch.manual_seed(0)
    kept_rec = _saved_bytes(rec)
    assert kept_rec < 0.6 * kept_plain, (kept_rec, kept_plain)


def test_blocks_without_anything_to_differentiate_run_plainly(monkeypatch):
    calls = []
    real = recompute_mod.checkpoint

    def counting(fn, block, *args, **kwargs):
        calls.append(block)
        return real(fn, block, *args, **kwargs)
    monkeypatch.setattr(recompute_mod, 'checkpoint', counting)
    # Pro-tuning at the input of stage 2 only: stages 0-1 have nothing upstream
    # that requires grad; stage 3 reaches no returned feature (not wrapped).
    torch.manual_seed(0)
    model = ProTune(backbone=BACKBONES['swin'], stages=[2], groups=2, se_ratio=2,
                    recompute=True).train()
    stages = model.backbone.stages
    assert recomputed_blocks(model.backbone) == [
        f'stages.{i}.blocks.{j}' for i in range(3) for j in range(len(stages[i].blocks))]
    _loss(_outputs(model)).backward()
    assert calls == list(stages[2].blocks)
    calls.clear()
    with torch.no_grad():
        _outputs(model)
    assert calls == []
    # The frozen model: nothing requires grad anywhere, nothing is checkpointed.
    frozen = Frozen(backbone=BACKBONES['swin'], recompute=True)
    out = _outputs(frozen)
    assert calls == [] and not any(o.requires_grad for o in out)
    # VPT's window prompts act inside every block: checkpointed from the first.
    vpt = VPT(backbone=BACKBONES['swin'], num_tokens=2, recompute=True).train()
    _outputs(vpt)
    assert len(calls) == len(recomputed_blocks(vpt.backbone))


def test_a_stateful_hook_inside_a_block_is_recomputed_with_an_exact_gradient():
    # Something inside a block (here a hook on its MLP adding a trainable bias,
    # counting its calls) is part of the block's forward: it runs again in the
    # backward, and its tensor gets the plain autograd gradient.
    grads, counts = [], []
    for rec in (False, True):
        torch.manual_seed(0)
        model = Frozen(backbone=BACKBONES['timm-vit'], recompute=rec).train()
        bias = torch.nn.Parameter(torch.full((32, ), 0.1))
        calls = []
        block = model.backbone.blocks[1]

        def hook(module, args, output):
            calls.append(1)
            return output + bias
        handle = block.mlp.register_forward_hook(hook)
        if rec:  # re-read what acts inside the blocks
            model.disable()
            model.enable()
        _loss(_outputs(model)).backward()
        handle.remove()
        grads.append(bias.grad)
        counts.append(len(calls))
    assert counts == [1, 2]
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-7)


def test_the_switch_auto_on_off_and_refusals():
    r18 = dict(type='mmdet.ResNet', depth=18, init_cfg=None)
    swin = BACKBONES['swin']
    # Auto: each family's paths (lean ops on ResNet, recomputation on Swin/ViT).
    auto_r18, auto_swin = Frozen(backbone=r18), Frozen(backbone=swin)
    assert auto_r18.lean_ops and not auto_r18.recompute and auto_r18.memory_efficient
    assert auto_swin.recompute and not auto_swin.lean_ops and auto_swin.memory_efficient
    for name in ('timm-vit', 'mmseg-vit'):
        assert Frozen(backbone=BACKBONES[name]).recompute
    off = Frozen(backbone=swin, memory_efficient=False)
    assert not (off.recompute or off.lean_ops or off.memory_efficient)
    assert not recomputed_blocks(off.backbone)
    assert Frozen(backbone=swin, memory_efficient=True).recompute
    lean_only = Frozen(backbone=swin, memory_efficient=True, recompute=False)
    assert not lean_only.recompute and not lean_only.memory_efficient
    assert Frozen(backbone=swin, memory_efficient=None, recompute=True).recompute
    with pytest.raises(TypeError, match=r"Frozen.recompute must be None \(auto\), True "
                       r"or False, got 'yes'"):
        Frozen(backbone=swin, recompute='yes')
    with pytest.raises(ValueError, match='recompute=True conflicts with memory_efficient'):
        Frozen(backbone=swin, memory_efficient=False, recompute=True)
    with pytest.raises(ValueError, match=r'ProTune.recompute=True: ResNet .* names no '
                       'frozen blocks'):
        ProTune(backbone=r18, recompute=True)
    mit = dict(type='mmseg.MixVisionTransformer', embed_dims=8, num_layers=(1, 1, 1, 1),
               num_heads=(1, 1, 1, 1), sr_ratios=(2, 2, 1, 1), init_cfg=None)
    with pytest.raises(ValueError, match='memory_efficient=True: MixVisionTransformer '
                       r'\(.*\) has no memory path'):
        Frozen(backbone=mit, memory_efficient=True)


def test_the_parameter_report_names_the_memory_paths():
    model = VPT(backbone=BACKBONES['swin'], num_tokens=2)
    notes = method_notes(model)
    # Stage 3 reaches no returned feature (out_indices 0-2): not wrapped.
    assert notes[-1] == ('<model>: memory: 4 frozen blocks recomputed in the backward '
                         '(stages.0.blocks.0-1, stages.1.blocks.0, stages.2.blocks.0)')
    r18 = Frozen(backbone=dict(type='mmdet.ResNet', depth=18, init_cfg=None))
    assert method_notes(r18) == ['<model>: memory: lean frozen ops (20 conv+BN pairs '
                                 'folded, 9 ReLU modules saving masks)']
    off = Frozen(backbone=BACKBONES['swin'], memory_efficient=False)
    assert method_notes(off) == ['<model>: memory: plain autograd through the frozen '
                                 'backbone']


@pytest.mark.parametrize('backbone', [pytest.param('swin', marks=pytest.mark.slow),
                                      'timm-vit'])
def test_torch_compile_traces_the_recomputed_forward_and_backward(backbone):
    # aot_eager: the AOT autograd graphs (forward and backward, with the
    # checkpointed regions) without inductor's code generation, slow on CPU.
    plain, rec = _pair(backbone, 'vpt')
    for m in (plain, rec):
        m.prompt_dropout.p = 0.0  # compiled and eager runs draw differently
    out_p, grads_p = _run(plain)
    torch._dynamo.reset()
    start = time.perf_counter()
    compiled = torch.compile(rec, backend='aot_eager', fullgraph=True)
    out_c, grads_c = _run(compiled)
    assert time.perf_counter() - start < 60
    for a, b in zip(out_p, out_c):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    for name, g in grads_p.items():
        torch.testing.assert_close(grads_c[name], g, rtol=1e-4, atol=1e-6, msg=name)
