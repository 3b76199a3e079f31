"""protune_mm.data (tools/make_synthetic_data.py): the stock mmdet / mmseg
dataset configs load the synthetic sets unchanged and run their pipelines;
annotations agree with the pixels; files are byte-identical per seed; reruns skip,
--force and new parameters rewrite, and an interrupted run never replaces a complete
set."""
import hashlib
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO
from protune_mm.cli import make_synthetic_data as cli
from protune_mm.data import ade, draw, looks
from protune_mm.data.coco import COCO_DRAWN
from protune_mm.data import synthetic as synth

TOOL = osp.join(REPO, 'tools', 'make_synthetic_data.py')

# Unused ids of the official COCO 2017 files.
COCO_ID_GAPS = {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}
NUM_TRAIN, NUM_VAL, SIZE = 6, 4, 160


@pytest.fixture(scope='module')
def coco_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('syn') / 'coco')
    assert synth.make_coco(root, NUM_TRAIN, NUM_VAL, SIZE, seed=0)['written']
    return root


@pytest.fixture(scope='module')
def ade_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('syn') / 'ade')
    assert synth.make_ade20k(root, NUM_TRAIN, NUM_VAL, SIZE, seed=0)['written']
    return root


def _hashes(root):
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = osp.join(dirpath, name)
            with open(path, 'rb') as f:
                out[osp.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return out


def _nearest_look(pixels, names):
    """The look among ``names`` whose base colour is nearest the pixels' median."""
    median = np.median(pixels.reshape(-1, 3).astype(np.float64), axis=0)
    dists = {n: np.linalg.norm(median - looks.LOOKS[n].base) for n in names}
    return min(dists, key=dists.get)


# ------------------------------------------------------------------------- COCO

def _build(base, data_root, cfg_dir, split_key='train_dataloader'):
    """Build a dataset of the stock config ``base`` ('mmdet::...' / 'mmseg::...'),
    inherited the way a user config does, with only ``data_root`` changed."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    scope = base.split('::')[0]
    cfg_file = osp.join(cfg_dir, f'inherit_{scope}.py')
    with open(cfg_file, 'w') as f:
        f.write(f'_base_ = [{base!r}]\n')
    ds_cfg = Config.fromfile(cfg_file)[split_key].dataset
    ds_cfg.data_root = data_root
    registry = __import__(f'{scope}.registry', fromlist=['DATASETS']).DATASETS
    with DefaultScope.overwrite_default_scope(scope):
        return registry.build(ds_cfg)


def test_coco_stock_config_runs_train_pipeline(coco_root, tmp_path):
    # Only data_root changes: ann_file, data_prefix, filter_cfg and the whole train
    # pipeline (LoadAnnotations with masks, Resize 1333x800, flip, pack) are stock.
    dataset = _build('mmdet::_base_/datasets/coco_instance.py', coco_root + '/', tmp_path)
    # filter_empty_gt=True keeps them all: every image has a non-crowd object.
    assert len(dataset) == NUM_TRAIN
    sample = dataset[0]
    inputs, ds = sample['inputs'], sample['data_samples']
    h, w = inputs.shape[1:]
    assert inputs.shape[0] == 3 and (max(h, w) == 1333 or min(h, w) == 800)
    gt = ds.gt_instances
    assert len(gt) > 0
    assert gt.masks.masks.shape == (len(gt), h, w)
    assert all(m.any() for m in gt.masks.masks)
    boxes = gt.bboxes.numpy() if hasattr(gt.bboxes, 'numpy') else gt.bboxes.tensor.numpy()
    assert (boxes[:, 2:] > boxes[:, :2]).all() and boxes.min() >= 0
    assert boxes[:, 2].max() <= w and boxes[:, 3].max() <= h
    # Image 0 holds a person crowd: iscrowd=1 becomes an ignored instance.
    assert len(ds.ignored_instances) == 1
    assert dataset.metainfo['classes'][int(ds.ignored_instances.labels[0])] == 'person'

    val = _build('mmdet::_base_/datasets/coco_detection.py', coco_root + '/', tmp_path,
                 split_key='val_dataloader')
    assert len(val) == NUM_VAL
    assert val[0]['inputs'].shape[0] == 3


@pytest.mark.parametrize('split, num', [('train', NUM_TRAIN), ('val', NUM_VAL)])
def test_coco_json_real_categories_and_pixels(coco_root, split, num):
    from mmdet.datasets import CocoDataset
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    coco = COCO(osp.join(coco_root, 'annotations', f'instances_{split}2017.json'))
    cat_ids = coco.getCatIds()
    assert cat_ids == sorted(set(range(1, 91)) - COCO_ID_GAPS)
    cats = coco.loadCats(cat_ids)
    assert tuple(c['name'] for c in cats) == CocoDataset.METAINFO['classes']
    sup = {c['name']: c['supercategory'] for c in cats}
    assert (sup['person'], sup['car'], sup['dog'], sup['tv'], sup['toothbrush']) == \
        ('person', 'vehicle', 'animal', 'electronic', 'indoor')
    assert len(coco.getImgIds()) == num
    drawn = [look.name for look in COCO_DRAWN]
    num_crowd = 0
    for img_info in coco.loadImgs(coco.getImgIds()):
        path = osp.join(coco_root, f'{split}2017', img_info['file_name'])
        img = np.asarray(Image.open(path).convert('RGB'))
        assert img.shape == (img_info['height'], img_info['width'], 3)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_info['id']))
        assert any(not a['iscrowd'] for a in anns)
        for ann in anns:
            name = coco.loadCats(ann['category_id'])[0]['name']
            x, y, bw, bh = ann['bbox']
            assert 0 <= x and 0 <= y and x + bw <= img.shape[1] and y + bh <= img.shape[0]
            mask = coco.annToMask(ann).astype(bool)
            assert mask.sum() == ann['area'] > 0
            if ann['iscrowd']:
                num_crowd += 1
                rle = ann['segmentation']
                assert isinstance(rle['counts'], str) and rle['size'] == list(img.shape[:2])
                decoded = mask_utils.decode(rle).astype(bool)
                assert decoded.sum() == ann['area']
                ys, xs = np.nonzero(decoded)
                assert ann['bbox'] == [xs.min(), ys.min(), xs.max() - xs.min() + 1,
                                       ys.max() - ys.min() + 1]
            else:
                poly = ann['segmentation']
                assert len(poly) == 1 and len(poly[0]) >= 6 and len(poly[0]) % 2 == 0
            # The annotation covers pixels drawn with its category's look.
            assert _nearest_look(img[mask], drawn) == name, (img_info['file_name'], name)
    assert num_crowd >= 1


def test_coco_gt_as_predictions_scores_perfect_map(coco_root):
    """CocoMetric on the stock ann_file: predicting the ground truth gives mAP 1 for
    boxes and masks (crowds are ignore regions and are not predicted)."""
    import torch
    from mmdet.datasets import CocoDataset
    from mmdet.evaluation import CocoMetric
    from pycocotools.coco import COCO

    ann_file = osp.join(coco_root, 'annotations', 'instances_val2017.json')
    coco = COCO(ann_file)
    metric = CocoMetric(ann_file=ann_file, metric=['bbox', 'segm'])
    metric.dataset_meta = CocoDataset.METAINFO
    label_of = {cid: i for i, cid in enumerate(coco.getCatIds())}
    samples = []
    for img_info in coco.loadImgs(coco.getImgIds()):
        anns = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=img_info['id']))
                if not a['iscrowd']]
        xyxy = [[x, y, x + w, y + h] for x, y, w, h in (a['bbox'] for a in anns)]
        samples.append(dict(
            img_id=img_info['id'], ori_shape=(img_info['height'], img_info['width']),
            pred_instances=dict(
                bboxes=torch.tensor(xyxy, dtype=torch.float32),
                scores=torch.ones(len(anns)),
                labels=torch.tensor([label_of[a['category_id']] for a in anns]),
                masks=torch.from_numpy(np.stack([coco.annToMask(a) for a in anns])).bool())))
    metric.process({}, samples)
    results = metric.compute_metrics(metric.results)
    assert results['bbox_mAP'] == pytest.approx(1.0)
    assert results['segm_mAP'] == pytest.approx(1.0)


# ----------------------------------------------------------------------- ADE20K

def test_ade_stock_config_runs_pipelines(ade_root, tmp_path):
    from mmseg.datasets import ADE20KDataset

    data_root = osp.join(ade_root, 'ADEChallengeData2016')
    classes = ADE20KDataset.METAINFO['classes']
    # Label values are the real ADE20K indices: value k is classes[k - 1].
    for name, value in ade.ADE_LABELS.items():
        assert classes[value - 1] == name

    dataset = _build('mmseg::_base_/datasets/ade20k.py', data_root, tmp_path)
    assert len(dataset) == NUM_TRAIN
    allowed = {v - 1 for v in ade.ADE_LABELS.values()} | {255}  # reduce_zero_label
    sample = dataset[0]
    c, h, w = sample['inputs'].shape
    assert c == 3 and max(h, w) <= 512  # stock RandomCrop 512; padding is the model's
    seg = sample['data_samples'].gt_sem_seg.data
    assert seg.shape == (1, h, w)
    assert set(seg.unique().tolist()) <= allowed
    assert len(set(seg.unique().tolist()) - {255}) >= 2

    val = _build('mmseg::_base_/datasets/ade20k.py', data_root, tmp_path,
                 split_key='val_dataloader')
    assert len(val) == NUM_VAL
    vs = val[0]
    # Test pipeline: resized to short side 512; the label map keeps the original size.
    assert vs['inputs'].shape[0] == 3 and min(vs['inputs'].shape[1:]) == 512
    vseg = vs['data_samples'].gt_sem_seg.data
    assert tuple(vseg.shape[1:]) == vs['data_samples'].ori_shape
    assert set(vseg.unique().tolist()) <= allowed


def test_ade_label_maps_match_pixels(ade_root):
    data_root = osp.join(ade_root, 'ADEChallengeData2016')
    # Sky is a gradient and trees include brown trunks: their median is not one base.
    checked = ['building', 'grass', 'road', 'sidewalk', 'person', 'car']
    for folder, prefix, num in (('training', 'ADE_train', NUM_TRAIN),
                                ('validation', 'ADE_val', NUM_VAL)):
        names = sorted(os.listdir(osp.join(data_root, 'images', folder)))
        assert names == [f'{prefix}_{i:08d}.jpg' for i in range(1, num + 1)]
        pixels = {name: [] for name in checked}
        seen_other = False
        for jpg in names:
            png = Image.open(osp.join(data_root, 'annotations', folder, jpg[:-4] + '.png'))
            assert png.mode == 'L'
            label = np.asarray(png)
            img = np.asarray(Image.open(osp.join(data_root, 'images', folder, jpg)))
            assert label.shape == img.shape[:2]
            assert set(np.unique(label).tolist()) <= {0, *ade.ADE_LABELS.values()}
            seen_other |= bool((label == 0).any())
            for name in checked:
                pixels[name].append(img[label == ade.ADE_LABELS[name]])
        assert seen_other  # some pixels are "other", i.e. ignored after reduce_zero_label
        for name in checked:
            px = np.concatenate(pixels[name])
            assert len(px) > 0, name
            assert _nearest_look(px, checked) == name


# ----------------------------------------------------- determinism, idempotence

@pytest.mark.parametrize('make', [synth.make_coco, synth.make_ade20k])
def test_deterministic_per_seed(tmp_path, make):
    a = _hashes(make(str(tmp_path / 'a'), 3, 2, 96, seed=5)['root'])
    b = _hashes(make(str(tmp_path / 'b'), 3, 2, 96, seed=5)['root'])
    c = _hashes(make(str(tmp_path / 'c'), 3, 2, 96, seed=6)['root'])
    assert len(a) > 5 and a == b
    assert set(a) == set(c)
    images = [k for k in a if k.endswith('.jpg')]
    assert all(a[k] != c[k] for k in images)
    # One generator per image: more images leave the first ones unchanged.
    d = _hashes(make(str(tmp_path / 'd'), 4, 2, 96, seed=5)['root'])
    assert all(d[k] == a[k] for k in images)


def test_skip_force_and_new_parameters(tmp_path):
    root = str(tmp_path / 'coco')
    first = synth.make_coco(root, 2, 1, 96, seed=0)
    assert first == dict(root=root, written=True, reason='new')
    with open(osp.join(root, synth.STAMP)) as f:
        stamp = json.load(f)
    assert stamp['params'] == dict(num_train=2, num_val=1, image_size=96, seed=0)
    assert set(stamp['files']) == set(_hashes(root)) - {synth.STAMP}
    # A foreign file survives a skip and disappears with a rewrite (root is replaced).
    marker = osp.join(root, 'marker')
    open(marker, 'w').close()
    assert not synth.make_coco(root, 2, 1, 96, seed=0)['written']
    assert osp.exists(marker)
    assert synth.make_coco(root, 2, 1, 96, seed=0, force=True)['written']
    assert not osp.exists(marker)
    # Other parameters rewrite without --force; a damaged set is rewritten too.
    again = synth.make_coco(root, 3, 1, 96, seed=0)
    assert again['written'] and 'num_train' in again['reason']
    assert len(os.listdir(osp.join(root, 'train2017'))) == 3
    os.remove(osp.join(root, 'train2017', '000000000002.jpg'))
    assert synth.make_coco(root, 3, 1, 96, seed=0)['written']
    assert osp.exists(osp.join(root, 'train2017', '000000000002.jpg'))
    assert sorted(os.listdir(tmp_path)) == ['coco']  # no scratch directories left


def test_interrupted_run_keeps_the_complete_set(tmp_path, monkeypatch):
    root = str(tmp_path / 'ade')
    synth.make_ade20k(root, 2, 1, 96, seed=0)
    before = _hashes(root)
    real_split = ade.write_split

    def crash_in_val(out_dir, split, *args):
        real_split(out_dir, split, *args)
        if split == 'val':
            raise KeyboardInterrupt

    monkeypatch.setattr(ade, 'write_split', crash_in_val)
    with pytest.raises(KeyboardInterrupt):
        synth.make_ade20k(root, 3, 1, 96, seed=0)
    assert _hashes(root) == before  # the old set is intact and still complete
    assert not synth.make_ade20k(root, 2, 1, 96, seed=0)['written']
    monkeypatch.setattr(ade, 'write_split', real_split)
    assert synth.make_ade20k(root, 3, 1, 96, seed=0)['written']
    assert sorted(os.listdir(tmp_path)) == ['ade']  # the scratch of the crash is gone


def test_refuses_foreign_directory_and_bad_parameters(tmp_path):
    foreign = tmp_path / 'real_coco'
    foreign.mkdir()
    (foreign / 'keep.txt').write_text('not ours')
    for force in (False, True):
        with pytest.raises(FileExistsError, match='not made by this script'):
            synth.make_coco(str(foreign), 2, 1, 96, 0, force=force)
    assert (foreign / 'keep.txt').read_text() == 'not ours'
    ade = str(tmp_path / 'ade')
    synth.make_ade20k(ade, 1, 1, 96, 0)
    with pytest.raises(FileExistsError, match='ade20k'):
        synth.make_coco(ade, 1, 1, 96, 0)
    for kwargs, field in ((dict(num_train=0), 'num_train'), (dict(num_val=-1), 'num_val'),
                          (dict(image_size=32), 'image_size'), (dict(seed=-1), 'seed')):
        args = {**dict(num_train=1, num_val=1, image_size=96, seed=0), **kwargs}
        with pytest.raises(ValueError, match=field):
            synth.make_coco(str(tmp_path / 'x'), **args)
    with pytest.raises(TypeError, match='image_size'):
        synth.make_ade20k(str(tmp_path / 'x'), 1, 1, 96.0, 0)
    assert not (tmp_path / 'x').exists()


@pytest.mark.slow  # four command lines, each importing protune_mm (torch, mmdet)
def test_cli_writes_then_skips(tmp_path):
    cmd = [sys.executable, TOOL, '--only', 'ade', '--ade', str(tmp_path / 'ade'),
           '--num-train', '2', '--num-val', '1', '--size', '96']
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert 'ADE20K: wrote 2 train + 1 val images' in out and str(tmp_path / 'ade') in out
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert 'skipped' in out
    out = subprocess.run(cmd + ['--force'], capture_output=True, text=True, check=True).stdout
    assert 'wrote' in out
    assert not (tmp_path / 'coco').exists()
    bad = subprocess.run(cmd + ['--size', '10'], capture_output=True, text=True)
    assert bad.returncode != 0 and 'image_size must be >= 64' in bad.stderr


def test_cli_writes_the_set_asked_for_and_names_a_bad_field(tmp_path, capsys):
    cli.main(['--only', 'ade', '--ade', str(tmp_path / 'ade'), '--num-train', '1',
              '--num-val', '1', '--size', '96'])
    assert 'ADE20K: wrote 1 train + 1 val images (new)' in capsys.readouterr().out
    assert synth.read_stamp(str(tmp_path / 'ade'))['kind'] == 'ade20k'
    assert not (tmp_path / 'coco').exists()
    with pytest.raises(SystemExit, match='COCO: image_size must be >= 64, got 10'):
        cli.main(['--only', 'coco', '--coco', str(tmp_path / 'coco'), '--size', '10'])
    assert not (tmp_path / 'coco').exists()


# ------------------------------------------------------------------ the drawing parts

def test_image_sizes_have_the_long_side_asked_for():
    rng = np.random.default_rng(0)
    sizes = {draw.image_size(200, rng) for _ in range(30)}
    assert sizes == {(200, 150), (150, 200), (200, 200)}  # landscape, portrait, square


def test_placed_objects_never_touch_and_stay_inside():
    rng = np.random.default_rng(0)
    boxes = []
    extent = np.array([-10., -5., 10., 5.])  # a 20 x 10 shape around the origin
    offsets = [draw.place(extent, 100, 80, boxes, rng, margin=3) for _ in range(40)]
    placed = [o for o in offsets if o is not None]
    assert len(placed) == len(boxes) > 3 and len(placed) < 40  # the image fills up
    for i, a in enumerate(boxes):
        assert a[0] >= 3 and a[1] >= 3 and a[2] <= 97 and a[3] <= 77
        for b in boxes[i + 1:]:
            assert (a[0] >= b[2] + 3 or b[0] >= a[2] + 3 or
                    a[1] >= b[3] + 3 or b[1] >= a[3] + 3), (a, b)
    # A shape larger than the image has no place, and nothing is recorded.
    assert draw.place(np.array([-60., -5., 60., 5.]), 100, 80, boxes, rng) is None
    assert len(boxes) == len(placed)


def test_polygon_mask_fills_the_polygon():
    square = draw.rect(20, 10) + [30, 20]  # x 20..40, y 15..25
    mask = draw.polygon_mask(square, 64, 48)
    ys, xs = np.nonzero(mask)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (20, 40, 15, 25)
    assert mask.sum() == 21 * 11  # PIL fills the outline's pixels too
    # (x, y) pairs as the transfer study's tasks pass them give the same mask.
    assert np.array_equal(draw.polygon_mask([tuple(p) for p in square.tolist()], 64, 48),
                          mask)
    # Rotation about the origin keeps every corner's distance to it.
    turned = draw.rotate(draw.rect(20, 10), 30)
    assert np.allclose(np.linalg.norm(turned, axis=1), np.hypot(10, 5))


def test_read_stamp_is_none_without_a_readable_stamp(tmp_path):
    assert synth.read_stamp(str(tmp_path / 'missing')) is None
    (tmp_path / synth.STAMP).write_text('{not json')
    assert synth.read_stamp(str(tmp_path)) is None
    (tmp_path / synth.STAMP).write_text('{"kind": "coco"}')
    assert synth.read_stamp(str(tmp_path)) == {'kind': 'coco'}
