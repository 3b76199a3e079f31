"""VPT on a frozen TimmViT (prepend tokens) and ResNet (pad prompts) (issue 4).

The Swin variant is tested in test_vpt_swin.py.
"""
import copy
import math

import pytest
import torch
import torch.nn as nn

import protune_mm  # noqa: F401
from protune_mm import MODELS, VPT
from protune_mm.methods.vpt import vpt_init_bound
from protune_mm.methods.vpt import PAD_MEAN, PAD_STD

pytest.importorskip('timm')
pytest.importorskip('mmdet')

TINY_VIT = dict(type='protune_mm.TimmViT', model_name='vit_tiny_patch16_224',
                model_kwargs=dict(depth=4, embed_dim=32, num_heads=2, img_size=64))
R18 = dict(type='mmdet.ResNet', depth=18, out_indices=(0, 1, 2, 3))


def image(b=2, h=64, w=64, seed=1):
    return torch.randn(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def randomise_norms(module: nn.Module, seed=0):
    """Non-identity norm layers and BN statistics (they start trivial), and layer
    scales of order 1 (DINOv2 starts them at 1e-5, hiding any token mixing)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith('.gamma'):
                p.uniform_(0.5, 1.0, generator=g)
        for m in module.modules():
            if isinstance(m, (nn.modules.batchnorm._NormBase, nn.LayerNorm)):
                m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
                if getattr(m, 'running_mean', None) is not None:
                    m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape,
                                                           generator=g))
                    m.running_var.uniform_(0.8, 1.2, generator=g)
    return module


def vpt_and_bare(cfg, seed=0, **kwargs):
    kwargs.setdefault('dropout', 0.0)
    torch.manual_seed(seed)
    vpt = VPT(backbone=cfg, **kwargs)
    randomise_norms(vpt.backbone, seed)
    bare = MODELS.build(cfg)
    bare.load_state_dict(vpt.backbone.state_dict())
    bare.eval()  # (mmdet's ResNet.train returns None: no chaining)
    return vpt.eval(), bare


def max_diff(outs_a, outs_b) -> float:
    assert [a.shape for a in outs_a] == [b.shape for b in outs_b]
    return max((a - b).abs().max().item() for a, b in zip(outs_a, outs_b))


def frozen_snapshot(wrapper) -> dict:
    return {k: v.clone() for k, v in wrapper.frozen_state_dict().items()}


def assert_frozen_unchanged(wrapper, snapshot):
    state = wrapper.frozen_state_dict()
    assert state.keys() == snapshot.keys()
    changed = [k for k, v in state.items() if not torch.equal(v, snapshot[k])]
    assert not changed, f'frozen tensors changed: {changed[:5]}'


def train_steps(vpt, x, steps=2):
    """AdamW on a real loss through the frozen backbone; returns the last grads."""
    optimizer = torch.optim.AdamW(vpt.parameters(), lr=1e-2, weight_decay=0.05)
    vpt.train()
    for _ in range(steps):
        optimizer.zero_grad()
        outs = vpt(x)
        loss = sum((o ** 2).mean() for o in outs)
        loss.backward()
        grads = {n: p.grad for n, p in vpt.named_parameters()}
        optimizer.step()
    return grads


# -- init bound ------------------------------------------------------------------------
def test_init_bound_formula():
    assert vpt_init_bound(16, 768) == 0.0625  # ViT-B/16, the paper's value
    assert vpt_init_bound((16, 16), 768) == 0.0625
    assert math.isclose(vpt_init_bound(14, 384), math.sqrt(6 / (3 * 196 + 384)))


def test_vit_prompts_are_uniform_within_the_bound():
    vpt = VPT(backbone=TINY_VIT, num_tokens=50, deep=True)
    bound = vpt_init_bound(16, 32)
    prompts = [h.prompt for h in vpt.prompts.values()]
    assert len(prompts) == 4 and all(p.shape == (1, 50, 32) for p in prompts)
    values = torch.cat([p.detach().flatten() for p in prompts])
    assert values.abs().max() <= bound
    assert values.abs().max() > 0.95 * bound  # uniform on [-b, b], not a smaller init
    assert math.isclose(values.std().item(), bound / math.sqrt(3), rel_tol=0.05)


# -- ViT -------------------------------------------------------------------------------
@pytest.mark.parametrize('cfg', [TINY_VIT, R18], ids=['vit', 'resnet'])
def test_zero_tokens_is_the_bare_backbone(cfg):
    vpt, bare = vpt_and_bare(cfg, num_tokens=0)
    assert len(vpt.prompts) == 0 and not any(p.requires_grad for p in vpt.parameters())
    x = image()
    with torch.no_grad():
        assert max_diff(vpt(x), bare(x)) == 0


@pytest.mark.parametrize('deep', [True, False])
@pytest.mark.parametrize('h, w', [(64, 64), (100, 75)])  # 500x375 / 5: not x16
def test_vit_prompts_keep_output_shapes_and_token_layout(deep, h, w):
    vpt, bare = vpt_and_bare(TINY_VIT, num_tokens=5, deep=deep)
    assert len(vpt.prompts) == (4 if deep else 1)
    grid = math.ceil(h / 16) * math.ceil(w / 16)
    seen = []
    for block in vpt.backbone.blocks:
        block.register_forward_pre_hook(lambda m, a: seen.append(a[0]))
    x = image(h=h, w=w)
    with torch.no_grad():
        outs, ref = vpt(x), bare(x)
    assert max_diff(outs, ref) > 1e-4  # prompts change the features ...
    assert [tuple(o.shape[-2:]) for o in outs] == [
        (math.ceil(h / s), math.ceil(w / s)) for s in (4, 8, 16, 32)]  # ... not shapes
    # [CLS, 5 prompts, patches] before every block; deep prompts replace, not add.
    assert [t.shape[1] for t in seen] == [1 + 5 + grid] * 4
    for i, t in enumerate(seen):
        holder = vpt.prompts[f'block{i}'] if deep else None
        if holder is not None:
            assert torch.equal(t[:, 1:6], holder.prompt.expand(2, -1, -1))


def test_vit_with_register_tokens_keeps_them_in_front():
    cfg = dict(TINY_VIT, model_name='vit_small_patch14_reg4_dinov2',
               model_kwargs=dict(depth=4, embed_dim=32, num_heads=2, img_size=56))
    vpt, bare = vpt_and_bare(cfg, num_tokens=3)
    seen = []
    vpt.backbone.blocks[2].register_forward_pre_hook(lambda m, a: seen.append(a[0]))
    x = image(h=70, w=50)
    with torch.no_grad():
        assert max_diff(vpt(x), bare(x)) > 1e-4
    assert seen[0].shape[1] == 5 + 3 + 5 * 4  # CLS + 4 registers, prompts, patches
    assert torch.equal(seen[0][:, 5:8], vpt.prompts['block2'].prompt.expand(2, -1, -1))


def test_vit_gradients_reach_prompts_only_and_frozen_stays_bit_identical():
    vpt = VPT(backbone=TINY_VIT, num_tokens=5, deep=True, dropout=0.1)
    randomise_norms(vpt.backbone)
    snapshot = frozen_snapshot(vpt)
    before = {n: p.detach().clone() for n, p in vpt.prompts.named_parameters()}
    grads = train_steps(vpt, image(h=70, w=50))
    assert not any(m.training for m in vpt.backbone.modules())
    assert vpt.prompt_dropout.training
    for name, grad in grads.items():
        if name.startswith('backbone.'):
            assert grad is None, name
        else:
            assert grad is not None and grad.abs().sum() > 0, name
    assert_frozen_unchanged(vpt, snapshot)
    assert all(not torch.equal(p, before[n]) for n, p in vpt.prompts.named_parameters())


def test_vit_b16_deep_10_tokens_trains_under_one_percent():
    vpt = VPT(backbone=dict(type='protune_mm.TimmViT',
                            model_name='vit_base_patch16_224'), num_tokens=10, deep=True)
    backbone = sum(p.numel() for p in vpt.backbone.parameters())
    prompts = sum(p.numel() for p in vpt.parameters() if p.requires_grad)
    assert prompts == 12 * 10 * 768
    print(f'VPT-deep 10 tokens on ViT-B/16: {prompts:,} trainable = '
          f'{100 * prompts / backbone:.3f}% of {backbone:,} backbone parameters')
    assert prompts / backbone < 0.01
    assert all(vpt_init_bound(16, 768) >= p.abs().max() for p in vpt.prompts.parameters())


def test_deepcopy_hooks_use_the_copys_prompts():
    vpt, bare = vpt_and_bare(TINY_VIT, num_tokens=4)
    clone = copy.deepcopy(vpt)
    x = image()
    with torch.no_grad():
        before = vpt(x)
        for p in clone.prompts.parameters():
            # (not a constant shift: LayerNorm would remove it)
            p.add_(torch.randn_like(p))
        assert max_diff(vpt(x), before) == 0  # the original ignores the copy's prompts
        assert max_diff(clone(x), before) > 1e-4
        for p, q in zip(vpt.prompts.parameters(), clone.prompts.parameters()):
            p.copy_(q)
        assert max_diff(clone(x), vpt(x)) == 0


# -- ResNet pad prompts ------------------------------------------------------------------
def _normalised(pixels):
    mean = torch.tensor(PAD_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(PAD_STD).view(1, 3, 1, 1)
    return (pixels - mean) / std


def prompt_frame(vpt, x, regions, p):
    """What the backbone must see: ``x`` at offset ``border`` in a zero canvas,
    each image's prompt frame (resized to its region) around its own region."""
    o = vpt.pad_align * math.ceil(p / vpt.pad_align)
    canvas = torch.nn.functional.pad(x, (o, o, o, o))
    for i, (h, w) in enumerate(regions):
        tb = _normalised(vpt.prompts['pad_tb'].prompt.detach())
        lr = _normalised(vpt.prompts['pad_lr'].prompt.detach())
        if tb.shape[-1] != w + 2 * p:
            tb = torch.nn.functional.interpolate(tb, size=(2 * p, w + 2 * p),
                                                 mode='bilinear', align_corners=False)
        if lr.shape[-2] != h:
            lr = torch.nn.functional.interpolate(lr, size=(h, 2 * p),
                                                 mode='bilinear', align_corners=False)
        canvas[i, :, o - p:o, o - p:o + w + p] = tb[0, :, :p]
        canvas[i, :, o + h:o + h + p, o - p:o + w + p] = tb[0, :, p:]
        canvas[i, :, o:o + h, o - p:o] = lr[0, ..., :p]
        canvas[i, :, o:o + h, o + w:o + w + p] = lr[0, ..., p:]
    return canvas


def _backbone_input(vpt, x):
    seen = []
    handle = vpt.backbone.conv1.register_forward_pre_hook(
        lambda m, args: seen.append(args[0].clone()))
    with torch.no_grad():
        outs = vpt(x)
    handle.remove()
    return seen[0], outs


def test_pad_prompts_surround_the_image_as_published():
    """The official layout: a border of p prompt pixels concatenated around the
    image (none replaced), top/bottom rows spanning the corners; the image at an
    offset of 32 px (a multiple of every ResNet stride), zeros beyond the
    prompts. Outputs are the bare backbone's on that input, cropped by
    32 / stride cells per side: the bare backbone's shapes."""
    p, base = 3, 40
    vpt, bare = vpt_and_bare(R18, num_tokens=p, pad_base=base)
    assert vpt.method_config()['deep'] is False and vpt.method_config()['location'] == 'pad'
    assert vpt.prompts['pad_tb'].prompt.shape == (1, 3, 2 * p, base + 2 * p)
    assert vpt.prompts['pad_lr'].prompt.shape == (1, 3, base, 2 * p)
    assert '(H+64) x (W+64) pixels, 1.27x at 512x512' in vpt.report_notes()[0]
    x = image(h=base, w=base)
    with pytest.warns(UserWarning, match='no image regions bound'):
        seen, outs = _backbone_input(vpt, x)
    expected = prompt_frame(vpt, x, [(base, base)] * 2, p)
    assert torch.equal(seen, expected)
    with torch.no_grad():
        full = bare(expected)
        ref = bare(x)
    for out, f, r in zip(outs, full, ref):
        k = 32 // (expected.shape[-1] // f.shape[-1])
        assert out.shape == r.shape and torch.equal(out, f[..., k:-k, k:-k])


@pytest.mark.parametrize('h, w', [(256, 256), (200, 232)])
def test_pad_prompts_keep_features_aligned_with_the_image(h, w):
    """An object at a known place responds at the same cells of every output as
    in the bare backbone (one cell off would move the peak), in maps of the
    bare backbone's sizes, also for sides that are no multiple of 32."""
    vpt, bare = vpt_and_bare(R18, num_tokens=5, pad_base=64)
    box = (slice(100, 140), slice(150, 190))
    assert object_peaks(vpt, h, w, box) == object_peaks(bare, h, w, box)


def object_peaks(net, h, w, box):
    """(shape, cell of the largest response) of each output to a bright square at
    ``box`` (rows, cols) on a black h x w image."""
    background = torch.zeros(1, 3, h, w)
    scene = background.clone()
    scene[:, :, box[0], box[1]] = 3.0
    with torch.no_grad():
        responses = [(a - b).norm(dim=1)[0] for a, b in zip(net(scene), net(background))]
    return [(tuple(r.shape), divmod(int(r.argmax()), r.shape[1])) for r in responses]


class OffByOneStride(nn.Module):
    """Outputs at stride 8 and at stride 16 with one extra cell (H/16 + 1, as
    ICNet's middle output): no exact stride fits the second."""

    def __init__(self):
        super().__init__()
        self.s8 = nn.Conv2d(3, 4, 8, stride=8)
        self.s16 = nn.Conv2d(3, 4, 16, stride=16, padding=8)

    def forward(self, x):
        return self.s8(x), self.s16(x)


class Stride64(nn.Module):
    """Outputs at strides 32 and 64, as RTMDet-P6's."""

    def __init__(self):
        super().__init__()
        self.s32 = nn.Conv2d(3, 4, 32, stride=32)
        self.s64 = nn.Conv2d(3, 4, 64, stride=64)

    def forward(self, x):
        return self.s32(x), self.s64(x)


def test_pad_align_is_32_or_the_largest_output_stride():
    """32 by default, even when the outputs stop at stride 8 (the backbone may
    downsample further inside); the largest output stride where that is larger,
    probed at construction; an explicit value wins."""
    MODELS.register_module('Stride64', module=Stride64, force=True)
    p6 = dict(type='protune_mm.Stride64')
    for cfg, align in [(R18, 32), (dict(R18, out_indices=(0, 1)), 32), (p6, 64)]:
        vpt = VPT(backbone=cfg, num_tokens=4)
        assert vpt.pad_align == vpt.method_config()['pad_align'] == align
        assert VPT(backbone=cfg, num_tokens=4, pad_align=128).pad_align == 128
    vpt = VPT(backbone=p6, num_tokens=4)
    with pytest.warns(UserWarning, match='no image regions bound'):
        outs = vpt(image(h=128, w=192))
    assert [tuple(o.shape[-2:]) for o in outs] == [(4, 6), (2, 3)]


@pytest.mark.parametrize('h, w', [(128, 128), (96, 160)])
def test_pad_prompts_crop_an_output_one_cell_off_its_stride(h, w):
    """An output of H/16 + 1 cells grows by 2 * border / 16 cells on the enlarged
    input, so cropping border / 16 per side keeps the bare shape and alignment."""
    MODELS.register_module('OffByOneStride', module=OffByOneStride, force=True)
    torch.manual_seed(0)
    vpt = VPT(backbone=dict(type='protune_mm.OffByOneStride'), num_tokens=3, pad_base=32)
    bare = OffByOneStride()
    bare.load_state_dict(vpt.backbone.state_dict())
    assert vpt.pad_align == 32
    box = (slice(40, 72), slice(48, 80))
    with pytest.warns(UserWarning, match='no image regions bound'):
        got = object_peaks(vpt, h, w, box)
    assert got == object_peaks(bare, h, w, box)
    assert got[1][0] == (h // 16 + 1, w // 16 + 1)


def test_pad_prompts_surround_each_image_of_a_padded_batch():
    """In a batch padded to a common shape, each image's frame goes around its own
    region (from the data samples' img_shape), not around the batch tensor."""
    from mmdet.structures import DetDataSample
    p = 4
    vpt, _ = vpt_and_bare(R18, num_tokens=p, pad_base=64)
    x = image(h=64, w=64)
    x[1, :, 40:] = 0
    x[1, :, :, 48:] = 0  # the second image is 40x48, padded like mmdet's batches

    class Detector(nn.Module):  # the forward signature of mmdet/mmseg models
        def __init__(self):
            super().__init__()
            self.backbone = vpt

        def forward(self, inputs, data_samples=None, mode='tensor'):
            return self.backbone(inputs)

    samples = [DetDataSample(metainfo=dict(img_shape=s)) for s in [(64, 64), (40, 48)]]
    model = Detector()
    handles = protune_mm.bind_image_regions(model)
    assert len(handles) == 2 and protune_mm.bind_image_regions(model) == []
    seen = []
    vpt.backbone.conv1.register_forward_pre_hook(lambda m, a: seen.append(a[0].clone()))
    with torch.no_grad():
        model(x, samples)
        model(inputs=x, data_samples=samples[:1] * 2)
    assert torch.equal(seen[0], prompt_frame(vpt, x, [(64, 64), (40, 48)], p))
    assert not torch.equal(seen[0], seen[1])
    assert torch.equal(seen[1], prompt_frame(vpt, x, [(64, 64)] * 2, p))
    assert vpt.mechanism.image_regions is None  # only for the duration of a forward
    vpt.remove()
    assert not model._forward_pre_hooks and not model._forward_hooks


def test_image_region_hook_binds_the_runners_model():
    from types import SimpleNamespace
    vpt, _ = vpt_and_bare(R18, num_tokens=2)
    model = nn.Sequential(vpt)
    protune_mm.ImageRegionHook().before_run(SimpleNamespace(model=model))
    assert vpt.mechanism.region_source() is model and len(model._forward_pre_hooks) == 1


def test_pad_prompts_train_without_touching_bn_statistics():
    vpt = VPT(backbone=dict(R18, norm_cfg=dict(type='BN', requires_grad=True)),
              num_tokens=4)
    randomise_norms(vpt.backbone)
    snapshot = frozen_snapshot(vpt)
    assert any(k.endswith('running_var') for k in snapshot)
    grads = train_steps(vpt, image(h=64, w=48))
    assert set(n for n, g in grads.items() if g is not None) == {
        'prompts.pad_tb.prompt', 'prompts.pad_lr.prompt'}
    assert all(grads[n].abs().sum() > 0 for n in ('prompts.pad_tb.prompt',
                                                  'prompts.pad_lr.prompt'))
    assert_frozen_unchanged(vpt, snapshot)


def test_pad_prompts_refuse_a_border_that_is_no_whole_number_of_cells():
    vpt = VPT(backbone=R18, num_tokens=4, pad_align=8)  # ResNet's outputs reach stride 32
    with pytest.raises(ValueError, match=r'stride dividing the border of 8 px.*pad_align'):
        vpt(image(h=64, w=64))


# -- bad configs ------------------------------------------------------------------------------
@pytest.mark.parametrize('cfg, kwargs, error, match', [
    (TINY_VIT, dict(num_tokens=-1), ValueError, r'num_tokens must be an int >= 0'),
    (TINY_VIT, dict(num_tokens=2.5), ValueError, r'num_tokens must be an int >= 0'),
    (R18, dict(deep=True), ValueError, r'deep=True needs a backbone made of blocks'),
    (TINY_VIT, dict(deep='yes'), TypeError, r'deep must be True, False or None'),
    (TINY_VIT, dict(dropout=1.0), ValueError, r'dropout must be a float in \[0, 1\)'),
    (TINY_VIT, dict(dropout=-0.1), ValueError, r'dropout must be a float in \[0, 1\)'),
    (TINY_VIT, dict(location='pad'), ValueError, r"location must be 'prepend'"),
    (R18, dict(location='prepend'), ValueError, r"location must be 'pad'"),
    (R18, dict(pad_base=0), ValueError, r'pad_base must be a positive int'),
    (R18, dict(pad_align=0), ValueError, r'pad_align must be a positive int'),
])
def test_bad_configs_name_the_field(cfg, kwargs, error, match):
    with pytest.raises(error, match=match):
        VPT(backbone=cfg, **kwargs)
