"""The models of the study: backbones, the light head, each method's wrapper config."""
import torch

from .variants import METHODS, STUDY_OPTIONS, Variant

#: ImageNet mean/std on 0-255 RGB: mmseg's default, and what VPT's pad prompts
#: assume (protune_mm.methods.vpt.PAD_MEAN/PAD_STD).
MEAN, STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)
HEAD_CHANNELS = 32


def backbone_config(name: str, size: int) -> dict:
    """The stock (unwrapped) backbone of the study, without weights."""
    if name == 'resnet':
        # ResNet-18-V1c at a quarter width (16-32-64-128 channels): small enough
        # for CPU, still a real mmseg ResNet the wrappers know.
        return dict(type='ResNetV1c', depth=18, stem_channels=16, base_channels=16,
                    out_indices=(0, 1, 2, 3), norm_cfg=dict(type='BN', requires_grad=True),
                    norm_eval=False, style='pytorch', contract_dilation=True)
    if name == 'vit':
        # A 4-block, 64-wide ViT with 8-px patches (an 8x8 token grid at 64 px),
        # one block per output. pyramid=False keeps the 4 outputs on the token
        # grid: TimmViT's pyramid would only interpolate them (no new information)
        # and make the light head run at stride 2, 16x the cost.
        return dict(type='protune_mm.TimmViT', model_name='vit_tiny_patch16_224',
                    pyramid=False, out_indices=(0, 1, 2, 3),
                    model_kwargs=dict(img_size=size, patch_size=8, embed_dim=64,
                                      depth=4, num_heads=2))
    raise ValueError(f'unknown backbone {name!r}')


def backbone_channels(name: str):
    return (16, 32, 64, 128) if name == 'resnet' else (64, ) * 4


def head_config(in_channels, num_classes: int) -> dict:
    """The light decode head, identical for every method: the 4 backbone levels
    resized to the finest one and concatenated, then one 1x1 conv (+BN+ReLU) and
    the 1x1 classifier, i.e. a per-pixel 2-layer MLP. It sees no spatial context
    of its own, so what the backbone computes is what head-only can use."""
    return dict(type='FCNHead', in_channels=list(in_channels), in_index=[0, 1, 2, 3],
                input_transform='resize_concat', channels=HEAD_CHANNELS, num_convs=1,
                kernel_size=1, concat_input=False, dropout_ratio=0.0,
                num_classes=num_classes, norm_cfg=dict(type='BN', requires_grad=True),
                align_corners=False,
                loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                                 loss_weight=1.0))


def method_config(method: str, backbone: str, inner: dict, size: int) -> dict:
    """The backbone config of ``method`` (a name or :class:`Variant`) around
    ``inner`` (which holds init_cfg)."""
    variant = Variant(method)
    method, options = variant.name, variant.options
    wrapper = METHODS[method][1]
    if wrapper is None:
        return inner
    cfg = dict(type=wrapper, backbone=inner)
    if backbone == 'resnet':
        # Lean frozen ops: same outputs, less time/memory (tested in the package).
        cfg['memory_efficient'] = True
    if method == 'vpt':
        if backbone == 'resnet':
            # Pad prompts: a border of p px around the image (VPT's search:
            # p in 1-11 at 224 px; here 10 px at 320 px, scaled), learned at the
            # image size itself.
            cfg.update(deep=False, num_tokens=vpt_border(size), pad_base=size)
        else:
            cfg.update(deep=True, num_tokens=10)  # VPT-deep
    if options.get('per_block'):
        if backbone != 'resnet':
            raise ValueError(f'--methods {variant!r}: per_block is for the resnet '
                             'backbone (the ViT has one block per stage already)')
        # ResNet-18: 2 BasicBlocks per stage. Named stages have no lean frozen ops
        # (the ResNet adapter's), so the frozen backbone runs its stock ops.
        cfg['stage_modules'] = [f'layer{i}.{j}' for i in range(1, 5) for j in range(2)]
        cfg.pop('memory_efficient', None)
    cfg.update((k, v) for k, v in options.items() if k not in STUDY_OPTIONS)
    return cfg


def vpt_border(size: int) -> int:
    return max(1, round(size * 10 / 320))


def segmentor_config(backbone: dict, in_channels, num_classes: int) -> dict:
    return dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=list(MEAN),
                               std=list(STD), size_divisor=32, pad_val=0,
                               seg_pad_val=255, bgr_to_rgb=False),
        backbone=backbone,
        decode_head=head_config(in_channels, num_classes),
        train_cfg=dict(), test_cfg=dict(mode='whole'))


def build_model(backbone_cfg: dict, backbone: str, num_classes: int,
                head_init=None):
    from mmengine.config import ConfigDict
    from mmseg.registry import MODELS
    # ConfigDict as from a config file (EncoderDecoder reads test_cfg.mode).
    model = MODELS.build(ConfigDict(segmentor_config(
        backbone_cfg, backbone_channels(backbone), num_classes)))
    model.init_weights()  # loads the inner backbone's init_cfg checkpoint
    if head_init is not None:
        model.decode_head.load_state_dict(head_init)
    return model


def initial_head(backbone: str, num_classes: int, seed: int) -> dict:
    """The head init of one seed, loaded into every method's model: prompt modules
    built before the head would otherwise shift the random stream per method."""
    from mmseg.registry import MODELS
    torch.manual_seed(seed)
    head = MODELS.build(head_config(backbone_channels(backbone), num_classes))
    head.init_weights()
    return {k: v.clone() for k, v in head.state_dict().items()}
