"""tools/test_robustness.py and protune_mm.robustness: corrupted-input evaluation of
mmdet and mmseg models (ImageNet-C / COCO-C corruptions, mPC, rPC)."""
import copy
import json
import os.path as osp
import uuid

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import loops

from conftest import config_path, load_tool, shrink
from protune_mm.robustness import (BENCHMARK, Corrupt, corrupt_image, resolve_corruptions,
                                   summarise)
from protune_mm.robustness.evaluate import corrupted_dataloader

robustness_tool = load_tool('test_robustness')
test_tool = load_tool('test')


def _image(h=48, w=56, seed=0):
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def test_corruption_is_deterministic_per_seed():
    img = _image()
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    for name in BENCHMARK:
        a = corrupt_image(img, name, 3, seed=7)
        assert a.shape == img.shape and a.dtype == np.uint8, name
        assert np.array_equal(a, corrupt_image(img, name, 3, seed=7)), name
        assert not np.array_equal(a, img), name
    # The caller's own numpy random stream does not move.
    assert np.array_equal(np.random.get_state()[1], before)
    for name in ('gaussian_noise', 'impulse_noise', 'glass_blur', 'frost'):
        assert not np.array_equal(corrupt_image(img, name, 3, seed=7),
                                  corrupt_image(img, name, 3, seed=8)), name
    # The pipeline step seeds by file name: the same image gets the same corruption
    # whatever the order; another image another one; severity 0 is a no-op.
    step = Corrupt('shot_noise', 2, seed=0)
    one = step(dict(img=img.copy(), img_path='/a/x.jpg'))['img']
    step(dict(img=img.copy(), img_path='/a/y.jpg'))
    assert np.array_equal(one, step(dict(img=img.copy(), img_path='/b/x.jpg'))['img'])
    assert not np.array_equal(one, step(dict(img=img.copy(), img_path='/a/y.jpg'))['img'])
    assert Corrupt('shot_noise', 0)(dict(img=img))['img'] is img
    # BGR in, BGR out: the same as corrupting the RGB image.
    rgb = Corrupt('fog', 4, seed=1, channel_order='rgb')(
        dict(img=img[..., ::-1].copy(), img_path='x.jpg'))['img']
    bgr = Corrupt('fog', 4, seed=1)(dict(img=img.copy(), img_path='x.jpg'))['img']
    assert np.array_equal(rgb[..., ::-1], bgr)


def test_unknown_corruption_or_severity_is_one_line_listing_the_allowed_values(tmp_path):
    ckpt = tmp_path / 'x.pth'
    torch.save(dict(state_dict={}), str(ckpt))
    cfg = config_path('upernet_protune_r50_ade20k')
    for argv, expected in (
            (['--corruptions', 'noise', 'rain'],
             r"^error: --corruptions: unknown corruption 'rain'; allowed: a set of "
             r"\['benchmark', 'noise', 'blur', 'weather', 'digital', 'all'\] or "
             r"corruptions \['gaussian_noise', "),
            (['--severities', '1', '6'],
             r"^error: --severities: unknown severity '6'; allowed: 0 \(clean\) or "
             r"\[1, 2, 3, 4, 5\]$"),
            (['--severities', 'high'], r"^error: --severities: unknown severity 'high'")):
        with pytest.raises(SystemExit, match=expected):
            robustness_tool.main([cfg, str(ckpt), *argv])
    assert resolve_corruptions(['blur', 'fog', 'motion_blur']) == [
        'defocus_blur', 'glass_blur', 'motion_blur', 'zoom_blur', 'fog']
    assert resolve_corruptions(['benchmark']) == list(BENCHMARK) and len(BENCHMARK) == 15
    with pytest.raises(ValueError, match="corruption: unknown corruption 'Fog'"):
        Corrupt('Fog', 1)


def test_corruption_goes_right_after_the_image_is_loaded():
    cfg = Config.fromfile(config_path('mask_rcnn_protune_r50'))
    loader = corrupted_dataloader(cfg.test_dataloader, 'snow', 2, seed=3)
    types = [t['type'] for t in loader['dataset']['pipeline']]
    assert types[:2] == ['LoadImageFromFile', 'protune_mm.Corrupt']
    assert loader['dataset']['pipeline'][1] == dict(
        type='protune_mm.Corrupt', corruption='snow', severity=2, seed=3)
    assert 'protune_mm.Corrupt' not in str(cfg.test_dataloader)  # a copy


def test_mpc_and_rpc():
    clean = {'mIoU': 40.0}
    corrupted = {'gaussian_noise': {'1': {'mIoU': 30.0}, '2': {'mIoU': 20.0}},
                 'fog': {'1': {'mIoU': 36.0}, '2': {'mIoU': 34.0}}}
    s = summarise(clean, corrupted)['mIoU']
    assert s['mPC'] == 30.0 and s['rPC'] == 0.75
    assert s['per_corruption'] == {'gaussian_noise': 25.0, 'fog': 35.0}
    assert s['per_family'] == {'noise': {'1': 30.0, '2': 20.0},
                               'weather': {'1': 36.0, '2': 34.0}}


# ----------------------------------------------------------------------------------
# End to end: a shrunk Pro-tuned Mask R-CNN / UPerNet, as checkpoint and as pack.

def _models(name, synthetic_data, tmp_path):
    """The shrunk config (its frozen backbone from a 'pretrained' file), a full
    checkpoint of a model with non-zero prompts, and its task pack."""
    from mmengine.registry import MODELS, init_default_scope
    from protune_mm import export_prompt_pack
    cfg = shrink(Config.fromfile(config_path(name)), synthetic_data, str(tmp_path / 'run'))
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(cfg.model))
    model.init_weights()
    with torch.no_grad():  # prompts that change the output (they start at scale 0)
        for key, p in model.named_parameters():
            if key.startswith('backbone.prompts.') and key.endswith('.scale'):
                p.fill_(0.5)
    pretrained = str(tmp_path / 'pretrained.pth')
    torch.save(dict(state_dict=model.backbone.backbone.state_dict()), pretrained)
    cfg.model.backbone.backbone.init_cfg = dict(type='Pretrained', checkpoint=pretrained)
    path = str(tmp_path / f'{name}_small.py')
    cfg.dump(path)
    full = str(tmp_path / 'full.pth')
    torch.save(dict(state_dict=model.state_dict(), meta={}), full)
    pack = str(tmp_path / 'task.safetensors')
    export_prompt_pack(model, full, pack, 'task')
    return path, full, pack


def _opts(tmp_path, tag):
    return ['--work-dir', str(tmp_path / tag), '--cfg-options',
            f'experiment_name=r_{uuid.uuid4().hex[:8]}']


@pytest.mark.slow
@pytest.mark.parametrize('name', ['mask_rcnn_protune_r50', 'upernet_protune_r50_ade20k'])
def test_robustness_run_checkpoint_pack_clean_and_resume(name, synthetic_data, tmp_path,
                                                         monkeypatch):
    path, full, pack = _models(name, synthetic_data, tmp_path)
    keys = ['coco/bbox_mAP', 'coco/segm_mAP'] if 'mask_rcnn' in name else ['mIoU']

    # An empty corruption set (and severity 0) is tools/test.py's evaluation, exactly.
    reference = test_tool.main([path, full, *_opts(tmp_path, 'test')])
    for extra in (['--corruptions'], ['--corruptions', 'fog', '--severities', '0']):
        report = robustness_tool.main([path, full, *extra, *_opts(tmp_path, 'clean'),
                                       '--results', str(tmp_path / 'clean.json')])
        assert report['evaluations'] == {'clean': {'0': {
            k: float(v) for k, v in reference.items()}}}
        assert report['complete']

    # Two corruptions x two severities from the full checkpoint.
    argv = ['--corruptions', 'gaussian_noise', 'pixelate', '--severities', '1', '3']
    out_full = str(tmp_path / 'full.json')
    seen, real_transform = [], Corrupt.transform

    def recorded(self, results):
        seen.append((self.corruption, self.severity, osp.basename(results['img_path'])))
        return real_transform(self, results)

    monkeypatch.setattr(Corrupt, 'transform', recorded)
    report = robustness_tool.main([path, full, *argv, *_opts(tmp_path, 'full'),
                                   '--results', out_full])
    ev = report['evaluations']
    assert report['complete'] and list(ev) == ['clean', 'gaussian_noise', 'pixelate']
    assert all(list(ev[c]) == ['1', '3'] for c in ('gaussian_noise', 'pixelate'))
    assert set(report['summary']) == set(keys)
    for key in keys:
        s = report['summary'][key]
        values = [ev[c][sev][key] for c in ('gaussian_noise', 'pixelate')
                  for sev in ('1', '3')]
        assert s['clean'] == ev['clean']['0'][key]
        assert s['mPC'] == pytest.approx(np.mean(values), abs=1e-4)
        if s['clean']:
            assert s['rPC'] == pytest.approx(s['mPC'] / s['clean'], abs=1e-3)
    # Every test image of every corrupted evaluation went through the corruption
    # (metrics of these untrained models may not move: mAP is 0 clean already).
    assert seen == [(c, s, f) for c in ('gaussian_noise', 'pixelate') for s in (1, 3)
                    for f in sorted(f for _, _, f in seen[:2])]
    with open(out_full) as f:
        assert json.load(f) == json.loads(json.dumps(report))
    assert osp.getsize(osp.splitext(out_full)[0] + '.png') > 1000
    assert any(line.startswith('| gaussian_noise ') for line in report['table'])

    # The pack gives the same numbers; a run interrupted after two evaluations
    # resumes with the three it had not done, and only those.
    out_pack = str(tmp_path / 'pack.json')
    calls, real_run = [], loops.TestLoop.run

    def interrupted(self):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(1)
        return real_run(self)

    monkeypatch.setattr(loops.TestLoop, 'run', interrupted)
    with pytest.raises(KeyboardInterrupt):
        robustness_tool.main([path, pack, *argv, *_opts(tmp_path, 'pack'),
                              '--results', out_pack])
    with open(out_pack) as f:
        partial = json.load(f)
    assert not partial['complete']
    assert partial['evaluations'] == {k: v for k, v in ev.items() if k == 'clean'} | {
        'gaussian_noise': {'1': ev['gaussian_noise']['1']}}

    def counted(self):
        calls.append(1)
        return real_run(self)

    calls.clear()
    monkeypatch.setattr(loops.TestLoop, 'run', counted)
    resumed = robustness_tool.main([path, pack, *argv, *_opts(tmp_path, 'pack'),
                                    '--results', out_pack, '--resume'])
    assert len(calls) == 3
    assert resumed['complete'] and resumed['evaluations'] == ev
    assert resumed['summary'] == report['summary']

    # --resume refuses the results of another run, naming the field.
    with pytest.raises(SystemExit, match=r'^error: --resume: .* \(checkpoint: '):
        robustness_tool.main([path, full, *argv, *_opts(tmp_path, 'other'),
                              '--results', out_pack, '--resume'])
