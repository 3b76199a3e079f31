"""TimmViT: a timm VisionTransformer as an mmdet / mmseg backbone (issue 3)."""
import math

import pytest
import torch
from mmengine.registry import DefaultScope

import protune_mm  # noqa: F401
from protune_mm import ProTune, TimmViT

timm = pytest.importorskip('timm')

TINY = dict(depth=4, embed_dim=32, num_heads=2)


def tiny_vit(**kwargs) -> TimmViT:
    kwargs.setdefault('model_name', 'vit_tiny_patch16_224')
    kwargs['model_kwargs'] = dict(TINY, **kwargs.get('model_kwargs', {}))
    return TimmViT(**kwargs).eval()


def reference_timm(vit: TimmViT, model_kwargs: dict):
    """timm's own model with the same weights, to compare against."""
    ref = timm.create_model(vit.model_name, pretrained=False, num_classes=0,
                            dynamic_img_size=True, dynamic_img_pad=True,
                            **dict(TINY, **model_kwargs))
    missing, unexpected = ref.load_state_dict(vit.state_dict(), strict=False)
    assert not unexpected and all(k.startswith(('norm.', 'fc_norm.', 'head'))
                                  for k in missing), missing
    return ref.eval()


def image(b=2, h=70, w=50, seed=1):
    return torch.randn(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


# -- shapes and strides ------------------------------------------------------------------
@pytest.mark.parametrize('h, w', [(70, 50), (64, 64), (33, 97)])
def test_any_input_size_gives_four_levels_at_strides_4_to_32(h, w):
    vit = tiny_vit()
    with torch.no_grad():
        outs = vit(image(h=h, w=w))
    assert len(outs) == 4
    for out, stride in zip(outs, (4, 8, 16, 32)):
        assert out.shape == (2, 32, math.ceil(h / stride), math.ceil(w / stride))


def test_without_pyramid_all_outputs_are_at_the_patch_stride():
    vit = tiny_vit(pyramid=False, out_indices=(1, 3))
    with torch.no_grad():
        outs = vit(image())
    assert [o.shape for o in outs] == [(2, 32, 5, 4)] * 2


@pytest.mark.parametrize('model_name, model_kwargs, prefix', [
    ('vit_tiny_patch16_224', dict(img_size=64), 1),  # CLS, pos embed on CLS
    ('vit_tiny_patch16_224', dict(img_size=(64, 48)), 1),  # non-square pos grid
    # DINOv2 with 4 registers: patch 14, no position embedding on prefix tokens.
    ('vit_small_patch14_reg4_dinov2', dict(img_size=56), 5),
    # registers and no CLS token at all
    ('vit_base_patch16_reg4_gap_256', dict(img_size=64), 4),
])
def test_features_are_timms_patch_tokens(model_name, model_kwargs, prefix):
    """Outputs are exactly timm's own intermediate patch-token maps: position
    embeddings are resized as timm does, and CLS/register tokens are excluded."""
    torch.manual_seed(0)
    vit = tiny_vit(model_name=model_name, model_kwargs=model_kwargs, pyramid=False,
                   out_indices=(0, 1, 2, 3))
    ref = reference_timm(vit, model_kwargs)
    assert vit.num_prefix_tokens == prefix
    seen = []
    vit.blocks[0].register_forward_pre_hook(lambda m, a: seen.append(a[0].shape[1]))
    x = image(h=70, w=50)
    with torch.no_grad():
        outs = vit(x)
        expected = ref.forward_intermediates(x, indices=[0, 1, 2, 3],
                                             intermediates_only=True)
    ph, pw = vit.patch_size
    grid = (math.ceil(70 / ph), math.ceil(50 / pw))
    assert seen == [prefix + grid[0] * grid[1]]
    for out, exp in zip(outs, expected):
        assert out.shape == exp.shape == (2, 32, *grid)
        assert torch.equal(out, exp)


def test_register_token_model_in_the_pyramid():
    vit = tiny_vit(model_name='vit_small_patch14_reg4_dinov2',
                   model_kwargs=dict(img_size=56))
    with torch.no_grad():
        outs = vit(image(h=70, w=50))
    # patch 14: levels at strides 3.5, 7, 14, 28, cropped like a conv backbone.
    assert [tuple(o.shape[-2:]) for o in outs] == [(20, 15), (10, 8), (5, 4), (3, 2)]


# -- validation --------------------------------------------------------------------------
@pytest.mark.parametrize('kwargs, error, match', [
    (dict(out_indices=(0, 1, 2, 9)), ValueError, r'out_indices \[9\].*\[0, 3\]'),
    (dict(out_indices=(0, 1, 2, -5)), ValueError, r'out_indices \[-1\]'),
    (dict(out_indices=(0, 1, 3)), ValueError, r'out_indices must have 4 entries'),
    (dict(out_indices=3), TypeError, r'out_indices must be a list'),
    (dict(out_indices=(0, 1, 2, 'last')), TypeError, r'out_indices must be a list'),
    (dict(num_stages=0), ValueError, r'num_stages must be an int in \[1, 4\]'),
    (dict(num_stages=5), ValueError, r'num_stages must be an int in \[1, 4\]'),
    (dict(model_name='no_such_vit'), ValueError, r'model_name'),
    (dict(model_name='resnet18'), TypeError, r"model_name='resnet18'.*not a timm "
                                             r'VisionTransformer'),
    (dict(model_name='deit_tiny_distilled_patch16_224'), TypeError,
     r'VisionTransformerDistilled, not a plain timm VisionTransformer'),
    (dict(init_cfg=dict(type='Kaiming')), ValueError, r"init_cfg must be None or "
                                                      r"dict\(type='Pretrained'"),
])
def test_bad_configs_name_the_field(kwargs, error, match):
    with pytest.raises(error, match=match):
        tiny_vit(**kwargs)


def test_negative_out_indices_count_from_the_end():
    assert tiny_vit(out_indices=(-4, -3, -2, -1)).out_indices == (0, 1, 2, 3)


# -- weights in timm's key layout --------------------------------------------------------
def _timm_checkpoint(tmp_path, suffix, img_size=224):
    """A timm model's full state dict (head included) as a file, like a release."""
    torch.manual_seed(7)
    src = timm.create_model('vit_tiny_patch16_224', pretrained=False, img_size=img_size,
                            **TINY)
    state = {k: v.contiguous() for k, v in src.state_dict().items()}
    path = tmp_path / f'vit{suffix}'
    if suffix == '.safetensors':
        from safetensors.torch import save_file
        save_file(state, str(path))
    else:
        torch.save({'state_dict': state}, path)  # wrapped, as many releases are
    return str(path), state


@pytest.mark.parametrize('suffix', ['.safetensors', '.pth'])
def test_timm_weights_load_into_the_frozen_backbone(tmp_path, suffix):
    from timm.layers import resample_abs_pos_embed
    path, state = _timm_checkpoint(tmp_path, suffix)
    cfg = dict(type='protune_mm.TimmViT', model_name='vit_tiny_patch16_224',
               model_kwargs=dict(TINY, img_size=64),
               init_cfg=dict(type='Pretrained', checkpoint=path))
    wrapper = ProTune(backbone=cfg)
    wrapper.init_weights()
    frozen = wrapper.frozen_state_dict()
    assert set(frozen) == {k for k in state
                           if not k.startswith(('head', 'norm.', 'fc_norm'))}
    for k, v in frozen.items():
        if k == 'pos_embed':
            # 14x14 grid of the file resized to the model's 4x4 grid, as timm does.
            assert v.shape == (1, 1 + 16, 32) and state[k].shape == (1, 1 + 196, 32)
            exp = resample_abs_pos_embed(state[k], (4, 4), num_prefix_tokens=1)
            assert torch.allclose(v, exp, atol=1e-6)
        else:
            assert torch.equal(v, state[k]), k
    assert all(not p.requires_grad for p in wrapper.backbone.parameters())


def test_weights_of_another_architecture_are_refused(tmp_path):
    path, _ = _timm_checkpoint(tmp_path, '.safetensors')
    vit = TimmViT(model_name='vit_tiny_patch16_224', num_stages=2,
                  model_kwargs=dict(depth=2, embed_dim=32, num_heads=2),
                  init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(ValueError, match='does not fit.*unexpected.*blocks.2'):
        vit.init_weights()


def test_missing_checkpoint_file_is_reported(tmp_path):
    vit = tiny_vit(init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'no.pth')))
    with pytest.raises(FileNotFoundError, match='no.pth'):
        vit.init_weights()


# -- inside mmdet ------------------------------------------------------------------------
def test_mask_rcnn_with_prompted_vit_and_fpn_trains():
    """A stock Mask R-CNN (FPN, RPN, RoI heads) on ProTune(TimmViT)."""
    import os.path as osp

    import mmdet
    from mmengine.config import Config
    from mmdet.registry import MODELS as DET_MODELS
    from test_protune import det_batch  # the tiny COCO-like batch

    cfg = Config.fromfile(osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs',
                                   'mask_rcnn', 'mask-rcnn_r50_fpn_1x_coco.py'))
    cfg.model.backbone = dict(type='protune_mm.ProTune', backbone=dict(
        type='protune_mm.TimmViT', model_name='vit_tiny_patch16_224',
        model_kwargs=dict(TINY, img_size=64)))
    cfg.model.neck.in_channels = [32] * 4
    cfg.model.neck.out_channels = 32
    cfg.model.rpn_head.in_channels = cfg.model.rpn_head.feat_channels = 32
    for head in ('bbox_roi_extractor', 'mask_roi_extractor'):
        cfg.model.roi_head[head].out_channels = 32
    cfg.model.roi_head.bbox_head.in_channels = 32
    cfg.model.roi_head.bbox_head.fc_out_channels = 64
    cfg.model.roi_head.mask_head.in_channels = cfg.model.roi_head.mask_head.conv_out_channels = 32
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = DET_MODELS.build(cfg.model)
    model.train()
    batch = model.data_preprocessor(det_batch(size=70, with_masks=True), True)
    losses = model(**batch, mode='loss')
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss) and 'loss_mask' in losses
    loss.backward()
    assert all(p.grad is None for p in model.backbone.backbone.parameters())
    assert all(p.grad is not None for n, p in model.backbone.prompts.named_parameters()
               if n.endswith('scale'))
