"""Adapters of the convolutional families (issue 13, part C) and the escape hatch
``ProTune(stage_modules=[...])``: the stages each family names, the method
contract on small configs of each (identity at init, frozen tensors unchanged,
every prompt learns), and stages that reach no returned feature refused."""
import os.path as osp

import pytest
import torch
import torch.nn as nn

pytest.importorskip('mmdet')
mmseg = pytest.importorskip('mmseg')

from mmengine.config import Config  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402

from protune_mm import MODELS, ProTune  # noqa: E402
from protune_mm.adapters import ModuleStagesAdapter, adapter_for  # noqa: E402
from protune_mm.check import check_method  # noqa: E402
from protune_mm.methods.protune import BranchBlocks  # noqa: E402

HRNET_EXTRA = dict(
    stage1=dict(num_modules=1, num_branches=1, block='BOTTLENECK', num_blocks=(1, ),
                num_channels=(8, )),
    stage2=dict(num_modules=1, num_branches=2, block='BASIC', num_blocks=(1, 1),
                num_channels=(6, 12)),
    stage3=dict(num_modules=1, num_branches=3, block='BASIC', num_blocks=(1, 1, 1),
                num_channels=(6, 12, 24)),
    stage4=dict(num_modules=1, num_branches=4, block='BASIC', num_blocks=(1, 1, 1, 1),
                num_channels=(6, 12, 24, 48)))  # HRNet-W18's widths / 3
R18_NARROW = dict(type='ResNet', depth=18, in_channels=3, base_channels=8,
                  stem_channels=16, out_indices=(0, 1, 2, 3))
MBV2 = dict(type='mmdet.MobileNetV2', widen_factor=0.25, out_indices=(2, 4, 7))

# (backbone, the stage names its adapter gives): small widths and depths.
FAMILIES = {
    'mmdet-hrnet': (dict(type='mmdet.HRNet', extra=HRNET_EXTRA),
                    ['layer1', 'stage2', 'stage3', 'stage4']),
    'mmseg-hrnet': (dict(type='mmseg.HRNet', extra=HRNET_EXTRA),
                    ['layer1', 'stage2', 'stage3', 'stage4']),
    'mmdet-mobilenetv2': (MBV2, [f'layer{i}' for i in range(1, 8)] + ['conv2']),
    'mmseg-mobilenetv2': (dict(type='mmseg.MobileNetV2', widen_factor=0.25,
                               strides=(1, 2, 2, 1, 1, 1, 1),
                               dilations=(1, 1, 1, 2, 2, 4, 4), out_indices=(1, 2, 4, 6)),
                          [f'layer{i}' for i in range(1, 8)]),
    'cspnext': (dict(type='mmdet.CSPNeXt', deepen_factor=0.167, widen_factor=0.125),
                ['stage1', 'stage2', 'stage3', 'stage4']),
    'cspdarknet': (dict(type='mmdet.CSPDarknet', deepen_factor=0.33, widen_factor=0.125),
                   ['stage1', 'stage2', 'stage3', 'stage4']),
    'unet': (dict(type='mmseg.UNet', base_channels=8, num_stages=3, strides=(1, 1, 1),
                  enc_num_convs=(1, 1, 1), dec_num_convs=(1, 1), downsamples=(True, True),
                  enc_dilations=(1, 1, 1), dec_dilations=(1, 1)),
             ['encoder.1', 'encoder.2', 'decoder.1', 'decoder.0']),
    'bisenetv1': (dict(type='mmseg.BiSeNetV1', context_channels=(32, 64, 128),
                       spatial_channels=(8, 8, 8, 32), out_channels=32,
                       backbone_cfg=dict(R18_NARROW, base_channels=16)),
                  [f'context_path.backbone.layer{i}' for i in range(1, 5)]
                  + [f'spatial_path.layer{i}' for i in range(2, 5)]),
    'bisenetv2': (dict(type='mmseg.BiSeNetV2', detail_channels=(16, 16, 32),
                       semantic_channels=(8, 16, 32, 32), semantic_expansion_ratio=2,
                       bga_channels=32),
                  ['detail.detail_branch.1', 'detail.detail_branch.2', 'semantic.stage2',
                   'semantic.stage3', 'semantic.stage4', 'semantic.stage4_CEBlock']),
    'icnet': (dict(type='mmseg.ICNet', layer_channels=(16, 64),
                   light_branch_middle_channels=8, psp_out_channels=32,
                   out_channels=(16, 32, 32),
                   backbone_cfg=dict(R18_NARROW, type='ResNetV1c', dilations=(1, 1, 2, 4),
                                     strides=(1, 2, 1, 1))),
              [f'backbone.layer{i}' for i in range(1, 5)]),
    'ssdvgg': (dict(type='mmdet.SSDVGG', depth=16, out_indices=(3, 4),
                    out_feature_indices=(22, 34)),
               [f'features.{i}' for i in (3, 8, 15, 22, 29, 34)]),
    'hourglass': (dict(type='mmdet.HourglassNet', downsample_times=2, num_stacks=2,
                       stage_channels=(16, 16, 32), stage_blocks=(1, 1, 1),
                       feat_channel=16),
                  ['hourglass_modules.0', 'hourglass_modules.1']),
    # Built up to layers.4 (a random-init B0's maps after it are ~1e-13).
    'efficientnet': (dict(type='mmdet.EfficientNet', arch='b0', out_indices=(2, 3, 4)),
                     [f'layers.{i}' for i in range(1, 5)]),
    'mobilenetv3': (dict(type='mmseg.MobileNetV3', arch='small', out_indices=(0, 1, 12)),
                    [f'layer{i}' for i in range(1, 13)]),
    'stdc': (dict(type='mmseg.STDCContextPathNet', last_in_channels=(128, 64),
                  out_channels=32, ffm_cfg=dict(in_channels=64, out_channels=64,
                                                scale_factor=4),
                  backbone_cfg=dict(type='STDCNet', stdc_type='STDCNet1', in_channels=3,
                                    channels=(8, 16, 32, 64, 128), bottleneck_type='cat',
                                    num_convs=4, with_final_conv=False,
                                    norm_cfg=dict(type='BN'), act_cfg=dict(type='ReLU'))),
             [f'backbone.stages.{i}' for i in range(1, 5)]),
    'cgnet': (dict(type='mmseg.CGNet', num_channels=(8, 16, 32), num_blocks=(2, 2),
                   reductions=(4, 8)), ['stem.2', 'level1.1', 'level2.1']),
    'erfnet': (dict(type='mmseg.ERFNet', enc_downsample_channels=(8, 16, 32),
                    enc_stage_non_bottlenecks=(1, 1), enc_non_bottleneck_dilations=(2, ),
                    enc_non_bottleneck_channels=(16, 32), dec_upsample_channels=(16, 8),
                    dec_stages_non_bottleneck=(1, 1), dec_non_bottleneck_channels=(16, 8)),
               ['encoder.1', 'encoder.3', 'decoder.0', 'decoder.2']),
    'fastscnn': (dict(type='mmseg.FastSCNN', downsample_dw_channels=(8, 16),
                      global_in_channels=16, global_block_channels=(16, 24, 32),
                      global_out_channels=32, higher_in_channels=16, lower_in_channels=32,
                      fusion_out_channels=32),
                 ['learning_to_downsample.dsconv1', 'learning_to_downsample.dsconv2']
                 + [f'global_feature_extractor.bottleneck{i}' for i in (1, 2, 3)]),
    'pidnet': (dict(type='mmseg.PIDNet', channels=8, ppm_channels=16, num_stem_blocks=1,
                    num_branch_blocks=1),
               [f'{b}_branch_layers.{i}' for i in range(3) for b in 'ipd']),
    'ddrnet': (dict(type='mmseg.DDRNet', channels=8, ppm_channels=16),
               [f'{b}_branch_layers.{i}' for i in range(3)
                for b in ('context', 'spatial')]),
    'mscan': (dict(type='mmseg.MSCAN', embed_dims=[8, 16, 32, 64], mlp_ratios=[2, 2, 2, 2],
                   depths=[1, 1, 1, 1], norm_cfg=dict(type='BN')),
              ['block1', 'block2', 'block3', 'block4']),
}


def mmseg_scope():
    # mmseg's UNet builds its upsampling layers in the default scope.
    return DefaultScope.overwrite_default_scope('mmseg')


@pytest.mark.parametrize('name', list(FAMILIES))
def test_family_stages_and_the_method_contract(name):
    backbone, expected = FAMILIES[name]
    with mmseg_scope():
        method = MODELS.build(dict(type='protune_mm.ProTune', backbone=backbone))
        assert type(method.adapter) is not ModuleStagesAdapter  # the family's own
        stages = method.adapter.stages()
        assert [s.name for s in stages] == expected
        assert method.stage_ids == list(range(len(expected)))  # all reach here
        assert not method.memory_efficient  # lean frozen ops stay off
        for cfg in (dict(type='protune_mm.ProTune', backbone=backbone),
                    dict(type='protune_mm.Frozen', backbone=backbone)):
            result = check_method(cfg, (1, 3, 32, 32))
            assert result.ok, (cfg['type'], result.failures)


def test_hrnet_puts_a_prompt_block_on_every_branch():
    backbone = FAMILIES['mmseg-hrnet'][0]
    method = ProTune(backbone=backbone, place='output')
    widths = [s.out_channels for s in method.adapter.stages()]
    assert widths[1:] == [(6, 12), (6, 12, 24), (6, 12, 24, 48)]
    for i, width in enumerate(widths[1:], 1):
        blocks = method.prompts[str(i)]
        assert isinstance(blocks, BranchBlocks)
        assert [b.scale.shape[1] for b in blocks] == list(width)
        # groups=4 where it divides the branch width, their gcd (2) where not.
        assert [b.body[0].groups for b in blocks] == [2, 4, 4, 4][:len(width)]
    result = check_method(dict(type='protune_mm.ProTune', backbone=backbone,
                               place='output'))
    assert result.ok, result.failures


def test_stock_hrnet_w18_takes_protune():
    cfg = Config.fromfile(osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs',
                                   '_base_', 'models', 'fcn_hr18.py'))
    backbone = dict(cfg.model.backbone, norm_cfg=dict(type='BN'))
    method = ProTune(backbone=dict(backbone, type='mmseg.HRNet'))
    assert [s.in_channels for s in method.adapter.stages()] == \
        [64, (18, 36), (18, 36, 72), (18, 36, 72, 144)]
    assert method.stage_ids == [0, 1, 2, 3]


@pytest.mark.parametrize('backbone, dead', [
    (dict(MBV2, out_indices=(2, )), ['layer4', 'layer5', 'layer6', 'layer7', 'conv2']),
    (dict(type='mmdet.CSPNeXt', deepen_factor=0.167, widen_factor=0.125,
          out_indices=(1, 2)), ['stage3', 'stage4']),
    (dict(FAMILIES['bisenetv2'][0], out_indices=(1, 2)),
     ['detail.detail_branch.1', 'detail.detail_branch.2', 'semantic.stage3',
      'semantic.stage4', 'semantic.stage4_CEBlock']),
    # (On 64x64 images the later stages of a random-init Darknet-53 have dead ReLUs.)
    (dict(type='mmdet.Darknet', depth=53, out_indices=(1, 2)),
     ['conv_res_block3', 'conv_res_block4', 'conv_res_block5']),
], ids=['mobilenetv2', 'cspnext', 'bisenetv2', 'darknet'])
def test_stages_after_the_last_returned_feature_are_skipped_or_refused(backbone, dead):
    # (ProTune's contract with stages skipped is checked on MobileNetV2 below.)
    method = ProTune(backbone=backbone, place='output')
    names = [s.name for s in method.adapter.stages()]
    assert [names[i] for i in method.stage_ids] == [n for n in names if n not in dead]
    assert sorted(method.skipped) == sorted(
        f'stage {names.index(n)} ({n})' for n in dead)
    with pytest.raises(ValueError, match='reaches no feature the backbone returns'):
        ProTune(backbone=backbone, place='output', stages=[names.index(dead[-1])])


# -- the escape hatch ------------------------------------------------------------------
def test_stage_modules_make_any_backbone_take_protune():
    names = ['layer2', 'layer3', 'layer4', 'layer5', 'layer6', 'layer7', 'conv2']
    cfg = dict(type='protune_mm.ProTune', backbone=MBV2, stage_modules=names)
    method = MODELS.build(cfg)
    assert type(method.adapter) is ModuleStagesAdapter
    assert [s.name for s in method.adapter.stages()] == names
    # MobileNetV2's widths (24, 32, 64, 96, 160, 320) x 0.25, rounded up to 8s.
    assert [s.out_channels for s in method.adapter.stages()] == \
        [8, 8, 16, 24, 40, 80, 1280]
    assert method.method_config()['stage_modules'] == names
    assert check_method(cfg).ok
    # layer5 is the last returned: later ones are skipped by default, as in the
    # registered adapter, or refused when named (below).
    assert check_method(dict(type='protune_mm.ProTune', place='output',
                             backbone=dict(MBV2, out_indices=(2, 4)))).ok


def test_stage_modules_override_a_registered_adapter_and_its_lean_ops():
    r18 = dict(type='mmdet.ResNet', depth=18, init_cfg=None)
    cfg = dict(type='protune_mm.ProTune', backbone=r18,
               stage_modules=['layer1.1', 'layer3.0.conv2'], place='output')
    method = MODELS.build(cfg)
    assert [s.out_channels for s in method.adapter.stages()] == [64, 256]
    assert not method.memory_efficient  # hooks on inner modules: stock forwards
    assert check_method(cfg).ok
    with pytest.raises(ValueError, match='lean frozen ops'):
        ProTune(backbone=r18, stage_modules=['layer1'], memory_efficient=True)


def test_a_named_stage_that_reaches_no_returned_feature_is_refused():
    with pytest.raises(ValueError, match=r"ProTune.stage_modules \['layer6'\] with "
                       r"place='input': the input of stage layer6 reaches no feature"):
        ProTune(backbone=dict(MBV2, out_indices=(2, 4)),
                stage_modules=['layer2', 'layer6'])
    # Its input reaches the returned layer5 output...
    ProTune(backbone=dict(MBV2, out_indices=(4, )), stage_modules=['layer5'])
    # ...its output is what is returned, but the next stage's is not.
    with pytest.raises(ValueError, match='output of stage layer6 reaches no feature'):
        ProTune(backbone=dict(MBV2, out_indices=(4, )), place='output',
                stage_modules=['layer5', 'layer6'])


def test_a_named_module_that_does_not_exist_lists_the_nearest_and_top_level():
    with pytest.raises(ValueError, match=r"MobileNetV2 has no module 'layer9'; nearest: "
                       r"layer\d.*its top-level modules: conv1, layer1, .*, conv2"):
        ProTune(backbone=MBV2, stage_modules=['layer2', 'layer9'])
    with pytest.raises(ValueError, match=r"nearest: layer3\.0\.expand_conv"):
        ProTune(backbone=MBV2, stage_modules=['layer3.0.expand_con'])
    with pytest.raises(ValueError, match="module 'layer2' is named twice"):
        ProTune(backbone=MBV2, stage_modules=['layer2', 'layer2'])
    with pytest.raises(TypeError, match='ProTune.stage_modules must be a list of module'):
        ProTune(backbone=MBV2, stage_modules='layer2')


SWIN = dict(type='mmdet.SwinTransformer', embed_dims=16, depths=(1, 1, 1, 1),
            num_heads=(1, 1, 1, 1), window_size=2, init_cfg=None)


def test_a_named_module_whose_output_is_not_a_feature_map_is_named_with_its_shape():
    # A Swin block's tokens are (B, N, C); a Swin stage returns a tuple.
    with pytest.raises(ValueError, match=r"the output of module 'stages.0.blocks.0' is a "
                       r"torch.float32 tensor of shape \(1, \d+, 16\), not a \(B, C, H, W\)"):
        ProTune(backbone=SWIN, stage_modules=['stages.0.blocks.0'], place='output')
    with pytest.raises(ValueError, match=r"the input of module 'stages.1' is a "
                       r"torch.float32 tensor of shape \(1, \d+, 32\), not a"):
        ProTune(backbone=SWIN, stage_modules=['stages.1'])
    with pytest.raises(ValueError, match=r"the output of module 'stages.1' is a tuple "
                       r"of 4 \(a torch.float32 tensor of shape \(1, \d+, 64\), a tuple"):
        ProTune(backbone=SWIN, stage_modules=['stages.1'], place='output')
    # A stage judged at its place only: a stem's input is the image, its output a map.
    stem = ProTune(backbone=MBV2, stage_modules=['conv1'], place='output')
    assert stem.adapter.stages()[0].out_channels == 8
    assert check_method(dict(type='protune_mm.ProTune', backbone=MBV2,
                             stage_modules=['conv1'], place='output')).ok


class TwoPaths(nn.Module):
    """A toy backbone: ``shared`` runs twice, ``spare`` never."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 2, 1)
        self.shared = nn.Conv2d(8, 8, 3, 1, 1)
        self.spare = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        return (self.shared(self.shared(self.stem(x))), )


def test_a_named_module_must_run_exactly_once_per_forward():
    if 'TwoPaths' not in MODELS.module_dict:
        MODELS.register_module(module=TwoPaths)
    for name, calls in (('shared', 2), ('spare', 0)):
        with pytest.raises(ValueError, match=f"module '{name}' is called {calls} times"):
            ProTune(backbone=dict(type='protune_mm.TwoPaths'), stage_modules=[name])


def test_the_probe_changes_nothing_it_runs_on():
    net = MODELS.build(dict(MBV2, norm_eval=False))
    net.train()
    net.layer3.eval()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    modes = {n: m.training for n, m in net.named_modules()}
    rng = torch.get_rng_state()
    stages = adapter_for(net).stages()
    assert len(stages) == 8
    assert torch.equal(torch.get_rng_state(), rng)  # prompt init unaffected
    assert {n: m.training for n, m in net.named_modules()} == modes
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in state.items())


@pytest.mark.parametrize('name', ['pidnet', 'ddrnet'])
def test_backbones_with_training_outputs_train_wrapped(name):
    """PIDNet and DDRNet return auxiliary outputs when training (their heads'
    losses need them): wrapped, the backbone's own flag follows the wrapper's
    mode, while its submodules stay in eval (BatchNorm statistics frozen)."""
    cfg = FAMILIES[name][0]
    torch.manual_seed(0)
    method = MODELS.build(dict(type='protune_mm.ProTune', backbone=cfg))
    stats = {k: v.clone() for k, v in method.backbone.state_dict().items()
             if 'running' in k}
    x = torch.randn(2, 3, 64, 64)
    method.train()
    outs = method(x)
    assert isinstance(outs, tuple) and len(outs) == (3 if name == 'pidnet' else 2)
    assert not any(m.training for m in method.backbone.modules()
                   if m is not method.backbone)
    sum(o.pow(2).mean() for o in outs).backward()
    scales = [p for n, p in method.prompts.named_parameters() if n.endswith('scale')]
    assert scales and all(p.grad is not None and p.grad.abs().sum() > 0 for p in scales)
    assert all(torch.equal(v, method.backbone.state_dict()[k]) for k, v in stats.items())
    method.eval()
    assert isinstance(method(x), torch.Tensor)
