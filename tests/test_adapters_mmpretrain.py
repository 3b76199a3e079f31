"""Adapters of the mmpretrain backbones the stock mmdet/mmseg configs use
(``mmpretrain.ConvNeXt``, ``PoolFormer``, ``ResNet``): the method contract, the
stages they name, refused unreachable stages, and a prompt-pack round trip.

mmpretrain is a dependency of this project (tools/setup_specs.sh): imported
plainly, so a missing install fails here instead of skipping.
"""
import pytest
import torch
import torch.nn as nn

import mmpretrain.models  # noqa: F401  (registers mmpretrain's backbones)
import protune_mm  # noqa: F401
from protune_mm import MODELS, ProTune, VPT, load_prompt_pack
from protune_mm.adapters import adapter_for
from protune_mm.check import check_method
from protune_mm.checkpoint import pack as pp

# Small ConvNeXt with the stock detection settings (all four stages returned as
# maps) and LayerScale at 1 instead of 1e-6, so each block changes its input
# noticeably and the identity checks are not vacuous.
CONVNEXT = dict(type='mmpretrain.ConvNeXt', arch=dict(depths=[1, 1, 2, 1],
                channels=[16, 32, 64, 128]), out_indices=[0, 1, 2, 3],
                gap_before_final_norm=False, layer_scale_init_value=1.0)
POOLFORMER = dict(type='mmpretrain.PoolFormer',
                  arch=dict(layers=[1, 1, 1, 1], embed_dims=[16, 32, 64, 128],
                            layer_scale_init_value=1.0),
                  out_indices=(0, 2, 4, 6))
# mmpretrain's own ResNet (the stock ReID / tracking configs): the ResNet adapter.
RESNET = dict(type='mmpretrain.ResNet', depth=18, out_indices=(0, 1, 2, 3))
BACKBONES = {'ConvNeXt': CONVNEXT, 'PoolFormer': POOLFORMER, 'ResNet': RESNET}
#: out_indices returning the second stage only, per backbone.
SECOND_STAGE_ONLY = {'ConvNeXt': [1], 'PoolFormer': (2, ), 'ResNet': (1, )}


def wrap(method, backbone, **kw):
    return dict(type=f'protune_mm.{method}', backbone=dict(backbone), **kw)


@pytest.mark.parametrize('method', ['Frozen', 'ProTune', 'VPT'])
@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_method_contract(name, method):
    result = check_method(wrap(method, BACKBONES[name]), (2, 3, 64, 64))
    assert result.ok, result.failures
    assert (result.trainable > 0) == (method != 'Frozen')


@pytest.mark.parametrize('name,expected', [
    ('ConvNeXt', [('stages.0', 16), ('stages.1', 32), ('stages.2', 64),
                  ('stages.3', 128)]),
    ('PoolFormer', [('network.0', 16), ('network.2', 32), ('network.4', 64),
                    ('network.6', 128)]),
])
def test_stages(name, expected):
    backbone = MODELS.build(dict(BACKBONES[name]))
    stages = adapter_for(backbone).stages()
    assert [(s.name, s.in_channels) for s in stages] == expected
    assert [s.out_channels for s in stages] == [w for _, w in expected]
    for stage in stages:
        assert stage.first is backbone.get_submodule(stage.name) is stage.last
    # The stage input is the map after its downsampling: the hooked tensor is NCHW
    # with the stage's width.
    seen = []
    hooks = [s.first.register_forward_pre_hook(
        lambda m, args: seen.append(tuple(args[0].shape))) for s in stages]
    backbone(torch.randn(1, 3, 64, 64))
    for h in hooks:
        h.remove()
    assert seen == [(1, w, 64 // 2 ** (2 + i), 64 // 2 ** (2 + i))
                    for i, (_, w) in enumerate(expected)]


def test_convnext_classification_output_and_negative_out_indices():
    # mmpretrain's defaults: the last stage only (out_indices=-1), pooled before
    # the final norm. Stages 0-2 reach the returned vector through stage 3.
    cfg = dict(CONVNEXT, out_indices=-1, gap_before_final_norm=True)
    model = ProTune(backbone=cfg)
    assert model.stage_ids == [0, 1, 2, 3]
    assert check_method(wrap('ProTune', cfg)).ok
    out = model(torch.randn(2, 3, 64, 64))
    assert len(out) == 1 and out[0].shape == (2, 128)


@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_unreachable_stages(name):
    # Return stage 1 only: stages 2 and 3 run but reach nothing returned.
    cfg = dict(BACKBONES[name], out_indices=SECOND_STAGE_ONLY[name])
    model = ProTune(backbone=cfg)
    assert model.stage_ids == [0, 1]
    assert len(model.skipped) == 2
    assert check_method(wrap('ProTune', cfg)).ok
    with pytest.raises(ValueError, match=r'ProTune.stages \[2, 3\].*reaches no feature'):
        ProTune(backbone=cfg, stages=[1, 2, 3])
    # place='output': the output of stage 1 is returned, that of stage 2 is not.
    assert ProTune(backbone=cfg, place='output', stages=[1]).stage_ids == [1]
    with pytest.raises(ValueError, match='reaches no feature'):
        ProTune(backbone=cfg, place='output', stages=[2])


def test_mmpretrain_resnet_stages_and_lean_ops():
    model = ProTune(backbone=RESNET)
    assert [s.name for s in model._stages] == ['layer1', 'layer2', 'layer3', 'layer4']
    assert [s.out_channels for s in model._stages] == [64, 128, 256, 512]
    assert model.memory_efficient  # the ResNet family's lean frozen ops, identity kept
    assert check_method(wrap('ProTune', RESNET, memory_efficient=False)).ok


def test_convnext_vpt_takes_pad_prompts():
    model = VPT(backbone=CONVNEXT)
    assert model.mechanism.name == 'pad' and model.deep is False
    with pytest.raises(ValueError, match='VPT.deep=True'):
        VPT(backbone=CONVNEXT, deep=True)


def test_convnext_pack_round_trip(tmp_path):
    def build(seed):
        torch.manual_seed(0)  # the same frozen backbone for both
        model = ProTune(backbone=CONVNEXT)
        torch.manual_seed(seed)
        with torch.no_grad():  # trained-looking prompts, different per seed
            for p in model.prompts.parameters():
                p.add_(torch.randn_like(p))
        return model.eval()

    x = torch.randn(1, 3, 64, 64)
    a, b = build(1), build(2)
    pack = pp.make_prompt_pack(nn.ModuleDict(dict(backbone=a)), 'prompts')
    path = pp.save_prompt_pack(pack, str(tmp_path / 'convnext.safetensors'))
    with torch.no_grad():
        expected = a(x)
        assert not torch.equal(b(x)[3], expected[3])
        result = load_prompt_pack(nn.ModuleDict(dict(backbone=b)), path)
        assert result.frozen_match
        assert all(torch.equal(u, v) for u, v in zip(b(x), expected))
