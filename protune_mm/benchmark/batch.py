"""The benchmark's fixed synthetic batch: random images with a few boxes and masks
(detection) or a label map (segmentation)."""


def parse_size(size) -> tuple:
    """``--size``: ``N`` (square) or ``WxH`` (e.g. ``1333x800``), as (width, height)."""
    w, _, h = str(size).partition('x')
    return int(w), int(h or w)


def synthetic_batch(task: str, batch: int, size, num_classes: int, seed: int = 0):
    """A fixed batch of ``batch`` uint8 images of ``size`` (``N`` or ``WxH``) with a
    few boxes + masks (detection) or a label map (segmentation)."""
    import numpy as np
    import torch
    width, height = parse_size(size)
    rng = np.random.RandomState(seed)
    inputs, samples = [], []
    for i in range(batch):
        inputs.append(torch.from_numpy(
            rng.randint(0, 256, (3, height, width), dtype=np.uint8)))
        shape = (height, width)
        meta = dict(img_id=i, img_path=f'synthetic_{i}.png', img_shape=shape,
                    ori_shape=shape, pad_shape=shape,
                    scale_factor=(1.0, 1.0), flip=False, flip_direction=None)
        if task == 'det':
            from mmdet.structures import DetDataSample
            from mmdet.structures.mask import BitmapMasks
            from mmengine.structures import InstanceData
            n = 4
            extent = np.array([width, height], np.float64)
            xy = rng.uniform(0, 1, (n, 2)) * extent * 0.6
            wh = rng.uniform(0.15, 0.4, (n, 2)) * extent
            boxes = np.concatenate([xy, np.minimum(xy + wh, extent - 1)], 1)
            masks = np.zeros((n, height, width), np.uint8)
            for k, (x1, y1, x2, y2) in enumerate(boxes.astype(int)):
                masks[k, y1:y2, x1:x2] = 1
            gt = InstanceData(
                bboxes=torch.tensor(boxes, dtype=torch.float32),
                labels=torch.tensor(rng.randint(0, num_classes, n)),
                masks=BitmapMasks(masks, height, width))
            sample = DetDataSample(metainfo=meta)
            sample.gt_instances = gt
        else:
            from mmengine.structures import PixelData
            from mmseg.structures import SegDataSample
            sample = SegDataSample(metainfo=meta)
            labels = torch.from_numpy(rng.randint(0, num_classes,
                                                  (height // 16, width // 16)))
            labels = labels.repeat_interleave(16, 0).repeat_interleave(16, 1)
            sample.gt_sem_seg = PixelData(data=labels[None].long())
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def num_classes(model_cfg) -> int:
    """The classes of the model's first head that says (10 if none does)."""
    for key in ('roi_head', 'decode_head', 'bbox_head'):
        head = model_cfg.get(key)
        if head is None:
            continue
        if key == 'roi_head':
            head = head['bbox_head']
        if isinstance(head, (list, tuple)):
            head = head[0]
        if 'num_classes' in head:
            return int(head['num_classes'])
    return 10
