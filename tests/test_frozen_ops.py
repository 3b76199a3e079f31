"""The memory-efficient frozen path (``memory_efficient=True``, frozen_ops.py)
computes what the plain frozen backbone computes: same outputs, same gradients to
the input and to the prompts, frozen tensors untouched, same state-dict keys."""
import copy

import pytest
import torch

from protune_mm import VPT, Frozen, ProTune
from protune_mm.ops.frozen_ops import (disable_frozen_ops,
                                       frozen_ops_enabled)

R18 = dict(type='mmdet.ResNet', depth=18, init_cfg=None)
R50_TINY = dict(type='mmdet.ResNet', depth=50, base_channels=8, stem_channels=8,
                init_cfg=None)


def _randomise(model, seed=0):
    """Non-trivial weights and BN statistics, so folding BN into convs is tested
    with values where a wrong formula shows (fresh BN is the identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith('running_var'):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith('scale'):  # ProTune output scale, 0 at init
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.1)
            else:
                t.copy_((torch.rand(t.shape, generator=g) - 0.5) * 0.4)
    return model


def _pair(cls, backbone, **kwargs):
    """(plain, memory-efficient) wrappers holding identical tensors."""
    torch.manual_seed(0)
    plain = cls(backbone=backbone, memory_efficient=False, **kwargs)
    torch.manual_seed(0)
    lean = cls(backbone=backbone, memory_efficient=True, **kwargs)
    _randomise(plain)
    lean.load_state_dict(plain.state_dict())
    return plain, lean


def _run(model, x, train=True):
    model.train(train)
    x = x.clone().requires_grad_(True)
    outs = model(x)
    # A loss that weights every output element differently.
    loss = sum((o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum() for o in outs)
    loss.backward()
    return [o.detach() for o in outs], x.grad


@pytest.mark.parametrize('backbone', [R18, R50_TINY], ids=['r18', 'r50-narrow'])
def test_outputs_and_input_grads_equal_plain_frozen(backbone):
    plain, lean = _pair(Frozen, backbone)
    assert frozen_ops_enabled(lean.backbone) and not frozen_ops_enabled(plain.backbone)
    x = torch.randn(2, 3, 64, 64)
    outs_p, grad_p = _run(plain, x)
    outs_l, grad_l = _run(lean, x)
    for a, b in zip(outs_p, outs_l):
        assert a.shape == b.shape
        assert (a - b).abs().max() <= 1e-5 * max(1.0, a.abs().max())
    torch.testing.assert_close(grad_l, grad_p, rtol=1e-4, atol=1e-5)
    # Inference (no_grad) takes the other code path: same outputs.
    with torch.no_grad():
        for a, b in zip(plain.eval()(x), lean.eval()(x)):
            assert (a - b).abs().max() <= 1e-5 * max(1.0, a.abs().max())


def test_every_conv_bn_pair_is_folded():
    lean = Frozen(backbone=R50_TINY, memory_efficient=True)
    pairs = lean.adapter.conv_bn_pairs()
    # stem + 16 bottlenecks x 3 + 4 downsamples
    assert len(pairs) == 1 + 16 * 3 + 4


@pytest.mark.parametrize('stages', [None, [1, 3]])
def test_protune_prompt_grads_equal(stages):
    plain, lean = _pair(ProTune, R18, stages=stages)
    x = torch.randn(2, 3, 64, 64)
    outs_p, grad_p = _run(plain, x)
    outs_l, grad_l = _run(lean, x)
    for a, b in zip(outs_p, outs_l):
        assert (a - b).abs().max() <= 1e-5 * max(1.0, a.abs().max())
    torch.testing.assert_close(grad_l, grad_p, rtol=1e-4, atol=1e-5)
    grads_p = {n: p.grad for n, p in plain.prompts.named_parameters()}
    grads_l = {n: p.grad for n, p in lean.prompts.named_parameters()}
    assert grads_p.keys() == grads_l.keys() and grads_p
    for n in grads_p:
        assert grads_p[n] is not None and grads_p[n].abs().sum() > 0, n
        torch.testing.assert_close(grads_l[n], grads_p[n], rtol=1e-4, atol=1e-6,
                                   msg=n)


def test_vpt_pad_prompt_grads_equal():
    # Pad prompts sit on the image: the gradient crosses the whole backbone + stem.
    plain, lean = _pair(VPT, R18, num_tokens=4, deep=False, dropout=0.0)
    x = torch.randn(1, 3, 64, 64)
    _run(plain, x)
    _run(lean, x)
    for (n, p), (_, q) in zip(plain.prompts.named_parameters(),
                              lean.prompts.named_parameters()):
        assert p.grad is not None and p.grad.abs().sum() > 0, n
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-6, msg=n)


def test_frozen_tensors_unchanged_and_keys_kept():
    plain, lean = _pair(ProTune, R18)
    assert list(lean.state_dict()) == list(plain.state_dict())
    before = {k: v.clone() for k, v in lean.backbone.state_dict().items()}
    optim = torch.optim.AdamW(lean.prompts.parameters(), lr=1e-2)
    for _ in range(2):
        optim.zero_grad()
        _run(lean, torch.randn(2, 3, 64, 64))
        optim.step()
    after = lean.backbone.state_dict()
    assert before.keys() == after.keys()
    for k in before:  # weights, BN statistics and num_batches_tracked alike
        assert torch.equal(before[k], after[k]), k
    assert all(not p.requires_grad for p in lean.backbone.parameters())


def test_loaded_weights_are_used_and_outputs_are_bit_identical():
    """Lean ops compute the stock forward (same ops, no cached weights): outputs
    equal the plain frozen backbone's exactly, in training and inference, also
    after new weights are loaded."""
    _, lean = _pair(Frozen, R18)
    other = _randomise(Frozen(backbone=R18, memory_efficient=False), seed=1)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        lean.eval()(x)
        lean.load_state_dict(other.state_dict())
        for a, b in zip(other.eval()(x), lean.eval()(x)):
            assert torch.equal(a, b)
    for a, b in zip(other(x.clone().requires_grad_(True)),
                    lean(x.clone().requires_grad_(True))):
        assert torch.equal(a, b)


def test_swapped_module_and_deepcopy_stay_correct():
    plain, lean = _pair(Frozen, R18)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = plain.eval()(x)
        # deepcopy: the rebound forwards follow the copied modules.
        twin = copy.deepcopy(lean)
        assert twin.backbone.conv1.forward.args[0] is twin.backbone.conv1
        # A module swapped in afterwards (e.g. by revert_sync_batchnorm) computes
        # by itself instead of being skipped.
        block = twin.backbone.layer1[0]
        fresh = copy.deepcopy(plain.backbone.layer1[0].norm1)
        setattr(block, block.norm1_name, fresh)
        for out in (lean.eval()(x), twin.eval()(x)):
            for a, b in zip(ref, out):
                assert (a - b).abs().max() <= 1e-5 * max(1.0, a.abs().max())


def test_bn_in_training_mode_falls_back_to_stock():
    plain, lean = _pair(Frozen, R18)
    plain.backbone.train()  # bypass the wrapper: BN uses batch statistics
    lean.backbone.train()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(plain.backbone(x), lean.backbone(x)):
            assert (a - b).abs().max() <= 1e-5 * max(1.0, a.abs().max())


def test_stages_before_first_prompt_get_no_backward():
    """Autograd already skips the stem and stages before the first prompt: their
    outputs do not require grad, so no graph (and no saved tensor) is made."""
    _, lean = _pair(ProTune, R18, stages=[2])
    seen = {}
    for name in ('layer1', 'layer2', 'layer3'):
        getattr(lean.backbone, name).register_forward_hook(
            lambda m, a, out, name=name: seen.update({name: out.requires_grad}))
    lean.train()(torch.randn(1, 3, 64, 64))
    assert seen == {'layer1': False, 'layer2': False, 'layer3': True}


def test_disable_restores_stock_forward():
    plain, lean = _pair(Frozen, R18)
    disable_frozen_ops(lean.backbone)
    assert not frozen_ops_enabled(lean.backbone)
    assert all('forward' not in m.__dict__ for m in lean.backbone.modules())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(plain.eval()(x), lean.eval()(x)):
            assert torch.equal(a, b)


def test_bad_input_refused():
    with pytest.raises(TypeError, match='memory_efficient'):
        Frozen(backbone=R18, memory_efficient='yes')
    swin = dict(type='mmdet.SwinTransformer', embed_dims=16, depths=(1, 1, 1, 1),
                num_heads=(1, 1, 1, 1), window_size=2, init_cfg=None)
    # Swin has no lean ops: True gives it its other path, recomputation.
    on = Frozen(backbone=swin, memory_efficient=True)
    assert not on.lean_ops and on.recompute
    # Auto (None) turns them on only where the adapter supports them.
    assert not Frozen(backbone=swin).lean_ops
    assert Frozen(backbone=R18).lean_ops and Frozen(backbone=R18).memory_efficient


def test_a_trainable_tensor_inside_the_backbone_computes_the_stock_way():
    # A method may train tensors inside the backbone (BitFit, norms): the pair
    # that holds one is not folded, and it gets the stock gradient.
    torch.manual_seed(0)
    plain = Frozen(backbone=R18, memory_efficient=False)
    lean = Frozen(backbone=R18)
    lean.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 64, 64)
    grads = []
    for model in (plain, lean):
        model.backbone.layer2[0].bn1.bias.requires_grad_(True)
        sum(o.sum() for o in model(x.clone().requires_grad_())).backward()
        grads.append(model.backbone.layer2[0].bn1.bias.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('geometry', [
    dict(kernel_size=1, stride=2),                          # ResNet downsample (fast path)
    dict(kernel_size=1, stride=1),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=7, stride=2, padding=3),               # the stem
    dict(kernel_size=3, stride=1, padding=2, dilation=2),   # ResNetV1c dilated stages
    dict(kernel_size=3, stride=2, padding=1, groups=4),     # ResNeXt
], ids=['1x1s2', '1x1s1', '3x3s2', '7x7s2', '3x3d2', '3x3s2g4'])
@pytest.mark.parametrize('size', [(16, 16), (17, 15)], ids=['even', 'odd'])
def test_conv_input_grad_equals_autograd(geometry, size):
    # Odd sizes: a strided conv never reaches the last row/column, whose gradient
    # must come out 0 at the input's own size.
    from protune_mm.ops.frozen_ops import conv_input_grad
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(8, 12, bias=False, **geometry)
    x = torch.randn(2, 8, *size, requires_grad=True)
    out = conv(x)
    grad = torch.randn_like(out)
    expected, = torch.autograd.grad(out, x, grad)
    got = conv_input_grad(grad, conv.weight.detach(), conv.stride, conv.padding,
                          conv.dilation, conv.groups, x.shape)
    assert got.shape == x.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
