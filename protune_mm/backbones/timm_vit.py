"""A timm VisionTransformer as an OpenMMLab backbone for dense prediction."""
import math
import os.path as osp
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModule

from ..registry import MODELS

# Rescale of each of the 4 outputs relative to the 1/patch token grid, as in
# ViTDet's simple pyramid and mmseg's Feature2Pyramid (4x up, 2x up, 1x, 2x down).
PYRAMID_SCALES = (4, 2, 1, 0.5)


@MODELS.register_module()
class TimmViT(BaseModule):
    """Any timm ``VisionTransformer`` as a backbone with multi-scale outputs.

    The features of the blocks in ``out_indices`` (patch tokens only: CLS,
    register and prompt tokens are dropped) are reshaped to maps at stride
    ``patch_size`` and resampled by ``PYRAMID_SCALES`` so FPN / UPerNet get 4
    levels. The resampling has no parameters on purpose: inside a frozen wrapper
    a learned deconvolution would stay at its random init.

    Inputs of any size work: the input is padded (bottom/right) to a multiple of
    the patch size, position embeddings are resized to the token grid, and each
    pyramid level is cropped to ceil(input / stride) like a conv backbone's maps.

    Args:
        model_name (str): a timm model name, e.g. ``'vit_base_patch16_224'``.
        out_indices (Sequence[int]): blocks whose outputs are used (4 of them when
            ``pyramid=True``). Default: the last block of each quarter.
        pyramid (bool): resample the 4 outputs to strides (4, 8, 16, 32) x
            patch/16. If False, all outputs stay at stride ``patch_size``.
        num_stages (int): groups of blocks seen as "stages" by prompt methods.
            Blocks after the last of ``out_indices`` are not run.
        model_kwargs (dict): extra arguments of ``timm.create_model`` (e.g.
            ``depth``, ``embed_dim``, ``drop_path_rate``).
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=PATH)``
            loads a timm-layout ``.safetensors``/``.pth`` file;
            ``checkpoint='timm://<model_name>'`` fetches timm's released weights
            (needs network).
    """

    def __init__(self, model_name: str = 'vit_base_patch16_224',
                 out_indices: Optional[Sequence[int]] = None, pyramid: bool = True,
                 num_stages: int = 4, model_kwargs: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        # The weights are loaded by our init_weights (timm key layout), not by
        # mmengine's initializers, so BaseModule does not get the init_cfg.
        super().__init__(init_cfg=None)
        import timm
        from timm.models.vision_transformer import VisionTransformer
        if init_cfg is not None and (not isinstance(init_cfg, dict)
                                     or init_cfg.get('type') != 'Pretrained'
                                     or not isinstance(init_cfg.get('checkpoint'), str)):
            raise ValueError("TimmViT.init_cfg must be None or dict(type='Pretrained', "
                             f'checkpoint=PATH or timm://NAME), got {init_cfg!r}')
        self.model_name = model_name
        self.weights_cfg = init_cfg
        try:
            vit = timm.create_model(model_name, pretrained=False, num_classes=0,
                                    dynamic_img_size=True, dynamic_img_pad=True,
                                    **(model_kwargs or {}))
        except RuntimeError as e:  # timm: "Unknown model (...)"
            raise ValueError(f'TimmViT.model_name: {e}') from e
        except TypeError as e:  # not a ViT (no dynamic_img_size) or bad model_kwargs
            raise TypeError(f'TimmViT.model_name={model_name!r} with model_kwargs='
                            f'{model_kwargs!r} is not a timm VisionTransformer: {e}') from e
        # Exactly VisionTransformer: subclasses (distilled DeiT, ...) embed tokens
        # differently from the _pos_embed below.
        if type(vit) is not VisionTransformer:
            raise TypeError(f'TimmViT.model_name={model_name!r} is a '
                            f'{type(vit).__name__}, not a plain timm VisionTransformer')
        # Keep only what the features need (no head, no final pooling/norm).
        self.patch_embed = vit.patch_embed
        self.cls_token = vit.cls_token
        self.reg_token = vit.reg_token
        self.pos_embed = vit.pos_embed
        self.pos_drop = vit.pos_drop
        self.patch_drop = vit.patch_drop
        self.norm_pre = vit.norm_pre
        self.blocks = vit.blocks
        self.embed_dim = vit.embed_dim
        self.no_embed_class = vit.no_embed_class
        self.dynamic_img_size = True
        self.num_prefix_tokens = vit.num_prefix_tokens
        self.patch_size = self.patch_embed.patch_size
        depth = len(self.blocks)
        if out_indices is None:
            out_indices = [depth * (i + 1) // 4 - 1 for i in range(4)]
        if isinstance(out_indices, int) or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in out_indices):
            raise TypeError(f'TimmViT.out_indices must be a list of block indices in '
                            f'[0, {depth - 1}] (negative counts from the end), got '
                            f'{out_indices!r}')
        out_indices = [i + depth if i < 0 else i for i in out_indices]
        bad = [i for i in out_indices if not 0 <= i < depth]
        if bad:
            raise ValueError(f'TimmViT.out_indices {bad} are not block indices: '
                             f'allowed [0, {depth - 1}] or [-{depth}, -1]')
        if pyramid and len(out_indices) != len(PYRAMID_SCALES):
            raise ValueError(f'TimmViT.out_indices must have {len(PYRAMID_SCALES)} '
                             f'entries with pyramid=True, got {list(out_indices)}')
        if isinstance(num_stages, bool) or not isinstance(num_stages, int) \
                or not 1 <= num_stages <= depth:
            raise ValueError(f'TimmViT.num_stages must be an int in [1, {depth}] (the '
                             f'ViT depth), got {num_stages!r}')
        self.out_indices = tuple(out_indices)
        self.pyramid = pyramid
        self.num_stages = num_stages

    def _pos_embed(self, x):
        """(B, H, W, C) patches -> (B, prefix + H*W, C) tokens, as timm's
        ``VisionTransformer._pos_embed`` with ``dynamic_img_size=True``: the
        position embeddings are resized from the model's own grid to (H, W)."""
        from timm.layers import resample_abs_pos_embed
        b, h, w, c = x.shape
        x = x.reshape(b, h * w, c)
        prefix = [t.expand(b, -1, -1) for t in (self.cls_token, self.reg_token)
                  if t is not None]
        if self.pos_embed is None:
            return self.pos_drop(torch.cat(prefix + [x], dim=1))
        pos = resample_abs_pos_embed(
            self.pos_embed, (h, w), old_size=self.patch_embed.grid_size,
            num_prefix_tokens=0 if self.no_embed_class else self.num_prefix_tokens)
        if self.no_embed_class:  # prefix tokens carry no position embedding
            x = torch.cat(prefix + [x + pos], dim=1)
        else:
            x = torch.cat(prefix + [x], dim=1) + pos
        return self.pos_drop(x)

    def forward(self, x):
        in_h, in_w = x.shape[-2:]
        x = self.patch_embed(x)  # (B, H, W, C): dynamic_img_size keeps the grid
        b, h, w, c = x.shape
        x = self.patch_drop(self._pos_embed(x))
        x = self.norm_pre(x)
        outs = []
        # Blocks after the last returned one would change nothing returned.
        for i, block in enumerate(self.blocks[:max(self.out_indices) + 1]):
            x = block(x)
            if i in self.out_indices:
                # Patch tokens are the last h*w; anything before them (CLS,
                # registers, prompts) is dropped.
                patches = x[:, x.shape[1] - h * w:]
                outs.append(patches.transpose(1, 2).reshape(b, c, h, w).contiguous())
        if self.pyramid:
            ph, pw = self.patch_size
            outs = [_rescale(o, s, (math.ceil(in_h * s / ph), math.ceil(in_w * s / pw)))
                    for o, s in zip(outs, PYRAMID_SCALES)]
        return tuple(outs)

    def init_weights(self):
        # Without init_cfg the weights stay as timm initialised them.
        if self.weights_cfg:
            self.load_timm_weights(self.weights_cfg['checkpoint'])

    def load_timm_weights(self, checkpoint: str):
        """Load timm-layout weights from a file or ``timm://NAME`` (all or nothing)."""
        import timm
        from timm.models.vision_transformer import checkpoint_filter_fn
        if checkpoint.startswith('timm://'):
            name = checkpoint[len('timm://'):]
            print_log(f'TimmViT: loading timm weights {name} (network)', 'current')
            state = timm.create_model(name, pretrained=True).state_dict()
        else:
            state = _read_state_dict(checkpoint)
        # timm's own converter: resizes pos_embed, converts npz/other layouts.
        state = checkpoint_filter_fn(state, self)
        own = self.state_dict()
        state = {k: v for k, v in state.items() if k in own or not k.startswith(
            ('head', 'fc_norm', 'norm.', 'attn_pool'))}
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        shapes = [f'{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}'
                  for k in own if k in state and state[k].shape != own[k].shape]
        if missing or unexpected or shapes:
            raise ValueError(
                f'TimmViT: {checkpoint} does not fit {self.model_name}: '
                f'missing {missing[:5]}, unexpected {unexpected[:5]}, '
                f'shape mismatches {shapes[:5]}')
        self.load_state_dict(state, strict=True)
        print_log(f'TimmViT: loaded {len(state)} tensors from {checkpoint}', 'current')


def _read_state_dict(path: str) -> dict:
    if not osp.isfile(path):
        raise FileNotFoundError(f'TimmViT: checkpoint file {path} does not exist')
    try:
        if path.endswith('.safetensors'):
            from safetensors.torch import load_file
            state = load_file(path)
        else:
            state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:
        raise ValueError(f'TimmViT: cannot read checkpoint {path}: {e}') from e
    for key in ('state_dict', 'model', 'module'):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    return {k[len('module.'):] if k.startswith('module.') else k: v
            for k, v in state.items()}


def _rescale(x, scale, size):
    """Resample a stride-``patch`` map by ``scale`` and crop it to ``size``, the
    ceil(input / stride) grid a conv backbone gives, so every level covers the image
    from its top-left corner like ResNet's maps (the input was padded bottom/right
    to a multiple of the patch size)."""
    if scale > 1:
        x = F.interpolate(x, scale_factor=scale, mode='bilinear', align_corners=False)
    elif scale < 1:
        # ceil_mode keeps the last row/column of an odd grid.
        x = F.max_pool2d(x, kernel_size=round(1 / scale), ceil_mode=True)
    return x[..., :size[0], :size[1]].contiguous()
