"""Explicit method configs: each method's options in one dataclass, checked before
the backbone is built, recorded in checkpoints and packs as before."""
import dataclasses
import json
import pathlib
from typing import ClassVar

import pytest
import torch
import torch.nn as nn

pytest.importorskip('mmdet')
pytest.importorskip('mmseg')

from protune_mm import MODELS, PromptMethod, ProTune, VPT  # noqa: E402
from protune_mm.checkpoint import pack as pp  # noqa: E402
from protune_mm.methods import MethodConfig, ProTuneConfig, VPTConfig  # noqa: E402

R18 = dict(type='mmdet.ResNet', depth=18, init_cfg=None)
SWIN = dict(type='mmdet.SwinTransformer', embed_dims=16, depths=(1, 1, 1, 1),
            num_heads=(1, 1, 1, 1), window_size=2, init_cfg=None)
VIT = dict(type='protune_mm.TimmViT', model_name='vit_tiny_patch16_224',
           model_kwargs=dict(depth=4, embed_dim=32, num_heads=2))
MIT = dict(type='mmseg.MixVisionTransformer', embed_dims=8, num_layers=[1, 1, 1, 1],
           num_heads=[1, 1, 1, 1])
CASES = {
    'frozen-r18': dict(type='protune_mm.Frozen', backbone=R18),
    'protune-r18': dict(type='protune_mm.ProTune', backbone=R18),
    'protune-r18-modules': dict(type='protune_mm.ProTune', backbone=R18,
                                stage_modules=['layer1', 'layer3'], groups=2),
    'protune-vit': dict(type='protune_mm.ProTune', backbone=VIT),
    'protune-swin-scalar': dict(type='protune_mm.ProTune', backbone=SWIN, scale='scalar',
                                se_act='relu', stages=[1, 0]),
    'vpt-r18': dict(type='protune_mm.VPT', backbone=R18, num_tokens=4),
    'vpt-r18-0': dict(type='protune_mm.VPT', backbone=R18, num_tokens=0),
    'vpt-swin': dict(type='protune_mm.VPT', backbone=SWIN, num_tokens=2),
    'vpt-vit-shallow': dict(type='protune_mm.VPT', backbone=VIT, num_tokens=3, deep=False,
                            dropout=0.0),
    'vpt-mit': dict(type='protune_mm.VPT', backbone=MIT, num_tokens=2),
}
#: What the code before the method configs were explicit (main at 532ab24)
#: recorded for CASES, and the shapes and sums of the prompts it drew at seed 0:
#: checkpoints and packs written by it must compare equal, and the prompts (the
#: transfer study's numbers) must be drawn the same.
GOLDEN = json.loads((pathlib.Path(__file__).parent / 'method_records_532ab24.json')
                    .read_text())


@pytest.mark.parametrize('name', sorted(CASES))
def test_records_and_prompts_equal_those_of_the_code_before(name):
    torch.manual_seed(0)
    method = MODELS.build(CASES[name])
    golden = GOLDEN[name]
    assert method.method_config() == golden['config']
    state = method.state_dict()
    recorded = json.loads(json.dumps(state._metadata['']['protune_mm'], default=str))
    assert recorded == golden['record']
    prompts = {k: [list(v.shape), float(v.double().sum())] for k, v in state.items()
               if not k.startswith('backbone.')}
    assert prompts == golden['prompts']


def test_an_unknown_option_is_refused_listing_the_options():
    with pytest.raises(TypeError, match=r"ProTune got unknown option\(s\) \['stage'\]; "
                                        r"its options are \['stages', 'stage_modules'"):
        ProTune(backbone=R18, stage=[1])
    with pytest.raises(TypeError, match=r"Frozen got unknown option\(s\) \['num_tokens'\]"
                                        r"; its options are none"):
        MODELS.build(dict(type='protune_mm.Frozen', backbone=R18, num_tokens=4))


def test_options_are_checked_before_the_backbone_is_built():
    missing = dict(type='mmdet.NoSuchNet')
    with pytest.raises(ValueError, match='ProTune.groups must be a positive int'):
        ProTune(backbone=missing, groups=0)
    with pytest.raises(ValueError, match='VPT.num_tokens must be an int >= 0'):
        VPT(backbone=missing, num_tokens=-1)


def test_configs_are_dataclasses_with_their_defaults():
    assert [f.name for f in dataclasses.fields(VPTConfig)] == \
        ['num_tokens', 'deep', 'dropout', 'location', 'pad_base', 'pad_align']
    assert ProTuneConfig().record() == dict(
        stages=None, place=None, hidden_ratio=0.5, kernel_size=5, groups=4,
        se_ratio=16, scale='channel', se_act='silu')  # stage_modules only when set
    assert ProTuneConfig.legacy_defaults == {'se_act': 'relu'}


def test_print_shows_the_method_its_options_and_where_prompts_attach():
    text = repr(ProTune(backbone=R18, stages=[1, 2]))
    assert "method=protune, stages=[1, 2], place='input'" in text
    assert 'blocks at the input of: layer2, layer3' in text
    assert 'mechanism: window prompts at 4 attentions' in repr(VPT(backbone=SWIN,
                                                                   num_tokens=2))
    assert 'mechanism: pad prompts around the input (image at a 32 px offset)' in \
        repr(VPT(backbone=R18, num_tokens=4))


@dataclasses.dataclass
class ShiftConfig(MethodConfig):
    owner: ClassVar[str] = 'Shift'
    init: float = 0.0

    def validate(self):
        if not isinstance(self.init, float):
            self.fail('init', 'a float')


class Shift(PromptMethod):
    """A new method in a few lines: a config dataclass and ``inject``."""
    method = 'shift'
    config_class = ShiftConfig

    def inject(self):
        self.prompts['shift'] = nn.ParameterList(
            [nn.Parameter(torch.full((1, 512, 1, 1), self.config.init))])
        layer = self.backbone.layer4
        return [layer.register_forward_hook(
            lambda m, a, out: out + self.prompts['shift'][0])]


def test_a_new_method_declares_its_options_in_a_dataclass(tmp_path):
    method = Shift(backbone=dict(R18, out_indices=(3, )), init=0.5)
    assert method.method_config() == {'init': 0.5}
    with pytest.raises(ValueError, match=r'Shift.init must be a float, got 1'):
        Shift(backbone=R18, init=1)
    # Its config travels in packs and is compared on load.
    pack = pp.make_prompt_pack(method, 'prompts')
    assert pack.metadata['method_config'] == {'init': 0.5}
    other = Shift(backbone=dict(R18, out_indices=(3, )), init=0.25)
    with pytest.raises(ValueError, match=r'shift config differs: init: pack 0.5, '
                                         r'model 0.25'):
        pp.load_prompt_pack(other, pack, allow_frozen_mismatch=True)
