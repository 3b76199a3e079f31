"""Adapters of the convolutional families (issue 13, part C) and the escape hatch
``ProTune(stage_modules=[...])``: the stages each family names, the method
contract on small configs of each (identity at init, frozen tensors unchanged,
every prompt learns), and stages that reach no returned feature refused."""
import pytest
import torch
import torch.nn as nn

pytest.importorskip('mmdet')
pytest.importorskip('mmseg')

from mmengine.registry import DefaultScope  # noqa: E402

from protune_mm import MODELS, ProTune  # noqa: E402
from protune_mm.adapters import ModuleStagesAdapter, adapter_for  # noqa: E402
from protune_mm.check import check_method  # noqa: E402
from protune_mm.methods.protune import BranchBlocks  # noqa: E402

HRNET_EXTRA = dict(
    stage1=dict(num_modules=1, num_branches=1, block='BOTTLENECK', num_blocks=(1, ),
                num_channels=(8, )),
    stage2=dict(num_modules=1, num_branches=2, block='BASIC', num_blocks=(1, 1),
                num_channels=(8, 16)),
    stage3=dict(num_modules=1, num_branches=3, block='BASIC', num_blocks=(1, 1, 1),
                num_channels=(8, 16, 32)),
    stage4=dict(num_modules=1, num_branches=4, block='BASIC', num_blocks=(1, 1, 1, 1),
                num_channels=(8, 16, 32, 64)))
R18_NARROW = dict(type='ResNet', depth=18, in_channels=3, base_channels=8,
                  stem_channels=16, out_indices=(0, 1, 2, 3))
MBV2 = dict(type='mmdet.MobileNetV2', widen_factor=0.25, out_indices=(2, 4, 7))

# (backbone, the stage names its adapter gives, input size): small widths/depths.
FAMILIES = {
    'mmdet-hrnet': (dict(type='mmdet.HRNet', extra=HRNET_EXTRA),
                    ['layer1', 'stage2', 'stage3', 'stage4'], 64),
    'mmseg-hrnet': (dict(type='mmseg.HRNet', extra=HRNET_EXTRA),
                    ['layer1', 'stage2', 'stage3', 'stage4'], 64),
    'mmdet-mobilenetv2': (MBV2, [f'layer{i}' for i in range(1, 8)] + ['conv2'], 64),
    'mmseg-mobilenetv2': (dict(type='mmseg.MobileNetV2', widen_factor=0.25,
                               strides=(1, 2, 2, 1, 1, 1, 1),
                               dilations=(1, 1, 1, 2, 2, 4, 4), out_indices=(1, 2, 4, 6)),
                          [f'layer{i}' for i in range(1, 8)], 64),
    'cspnext': (dict(type='mmdet.CSPNeXt', deepen_factor=0.167, widen_factor=0.125),
                ['stage1', 'stage2', 'stage3', 'stage4'], 64),
    'cspdarknet': (dict(type='mmdet.CSPDarknet', deepen_factor=0.33, widen_factor=0.125),
                   ['stage1', 'stage2', 'stage3', 'stage4'], 64),
    'unet': (dict(type='mmseg.UNet', base_channels=8, num_stages=3, strides=(1, 1, 1),
                  enc_num_convs=(1, 1, 1), dec_num_convs=(1, 1), downsamples=(True, True),
                  enc_dilations=(1, 1, 1), dec_dilations=(1, 1)),
             ['encoder.1', 'encoder.2', 'decoder.1', 'decoder.0'], 64),
    'bisenetv1': (dict(type='mmseg.BiSeNetV1', context_channels=(32, 64, 128),
                       spatial_channels=(8, 8, 8, 32), out_channels=32,
                       backbone_cfg=dict(R18_NARROW, base_channels=16)),
                  [f'context_path.backbone.layer{i}' for i in range(1, 5)]
                  + [f'spatial_path.layer{i}' for i in range(2, 5)], 64),
    'bisenetv2': (dict(type='mmseg.BiSeNetV2', detail_channels=(16, 16, 32),
                       semantic_channels=(8, 16, 32, 32), semantic_expansion_ratio=2,
                       bga_channels=32),
                  ['detail.detail_branch.1', 'detail.detail_branch.2', 'semantic.stage2',
                   'semantic.stage3', 'semantic.stage4', 'semantic.stage4_CEBlock'], 64),
    'icnet': (dict(type='mmseg.ICNet', layer_channels=(16, 64),
                   light_branch_middle_channels=8, psp_out_channels=32,
                   out_channels=(16, 32, 32),
                   backbone_cfg=dict(R18_NARROW, type='ResNetV1c', dilations=(1, 1, 2, 4),
                                     strides=(1, 2, 1, 1))),
              [f'backbone.layer{i}' for i in range(1, 5)], 64),
    'ssdvgg': (dict(type='mmdet.SSDVGG', depth=16, out_indices=(3, 4),
                    out_feature_indices=(22, 34)),
               [f'features.{i}' for i in (3, 8, 15, 22, 29, 34)], 64),
}


def mmseg_scope():
    # mmseg's UNet builds its upsampling layers in the default scope.
    return DefaultScope.overwrite_default_scope('mmseg')


@pytest.mark.parametrize('name', list(FAMILIES))
def test_family_stages_and_the_method_contract(name):
    backbone, expected, size = FAMILIES[name]
    with mmseg_scope():
        method = MODELS.build(dict(type='protune_mm.ProTune', backbone=backbone))
        assert isinstance(method.adapter, ModuleStagesAdapter)
        assert type(method.adapter) is not ModuleStagesAdapter  # the family's own
        assert [s.name for s in method.adapter.stages()] == expected
        assert method.stage_ids == list(range(len(expected)))  # all reach here
        assert not method.memory_efficient  # lean frozen ops stay off
        for cfg in (dict(type='protune_mm.ProTune', backbone=backbone),
                    dict(type='protune_mm.Frozen', backbone=backbone)):
            result = check_method(cfg, (2, 3, size, size))
            assert result.ok, (cfg['type'], result.failures)


def test_hrnet_puts_a_prompt_block_on_every_branch(place='output'):
    backbone = FAMILIES['mmseg-hrnet'][0]
    method = ProTune(backbone=backbone, place=place)
    widths = [s.in_channels if place == 'input' else s.out_channels
              for s in method.adapter.stages()]
    assert widths[1:] == [(8, 16), (8, 16, 32), (8, 16, 32, 64)]
    for i, width in enumerate(widths[1:], 1):
        blocks = method.prompts[str(i)]
        assert isinstance(blocks, BranchBlocks)
        assert [b.scale.shape[1] for b in blocks] == list(width)
    result = check_method(dict(type='protune_mm.ProTune', backbone=backbone,
                               place=place))
    assert result.ok, result.failures


@pytest.mark.parametrize('backbone, dead', [
    (dict(MBV2, out_indices=(2, )), ['layer4', 'layer5', 'layer6', 'layer7', 'conv2']),
    (dict(type='mmdet.CSPNeXt', deepen_factor=0.167, widen_factor=0.125,
          out_indices=(1, 2)), ['stage3', 'stage4']),
    (dict(FAMILIES['bisenetv2'][0], out_indices=(1, 2)),
     ['detail.detail_branch.1', 'detail.detail_branch.2', 'semantic.stage3',
      'semantic.stage4', 'semantic.stage4_CEBlock']),
], ids=['mobilenetv2', 'cspnext', 'bisenetv2'])
def test_stages_after_the_last_returned_feature_are_skipped_or_refused(backbone, dead):
    method = ProTune(backbone=backbone, place='output')
    names = [s.name for s in method.adapter.stages()]
    assert [names[i] for i in method.stage_ids] == [n for n in names if n not in dead]
    assert sorted(method.skipped) == sorted(
        f'stage {names.index(n)} ({n})' for n in dead)
    with pytest.raises(ValueError, match='reaches no feature the backbone returns'):
        ProTune(backbone=backbone, place='output', stages=[names.index(dead[-1])])
    assert check_method(dict(type='protune_mm.ProTune', backbone=backbone,
                             place='output')).ok


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
    assert check_method(dict(cfg, place='output')).ok


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


VIT = dict(type='protune_mm.TimmViT', model_name='vit_tiny_patch16_224',
           num_stages=2, model_kwargs=dict(depth=2, embed_dim=32, num_heads=2))


def test_a_named_module_whose_output_is_not_a_feature_map_is_named_with_its_shape():
    # A ViT block's tokens are (B, N, C).
    with pytest.raises(ValueError, match=r"the output of module 'blocks.0' is a "
                       r"torch.float32 tensor of shape \(1, \d+, 32\), not a \(B, C, H, W\)"):
        ProTune(backbone=VIT, stage_modules=['blocks.0'], place='output')
    # A stage judged at its place only: a stem's input is the image, its output a map.
    stem = ProTune(backbone=MBV2, stage_modules=['conv1'], place='output')
    assert stem.adapter.stages()[0].out_channels == 8
    assert check_method(dict(type='protune_mm.ProTune', backbone=MBV2,
                             stage_modules=['conv1'], place='output')).ok
    with pytest.raises(ValueError, match=r"the input of module 'blocks.1' is a "
                       r"torch.float32 tensor of shape \(1, \d+, 32\), not a"):
        ProTune(backbone=VIT, stage_modules=['blocks.1'], place='input')


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
