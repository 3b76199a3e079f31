# Quickstart: configs/seg/upernet_protune_r50_ade20k.py scaled to CPU minutes on the synthetic ADE20K-layout set of tools/make_synthetic_data.py (data/synthetic/ade).
_base_ = '../seg/upernet_protune_r50_ade20k.py'

data_root = 'data/synthetic/ade/ADEChallengeData2016'
crop_size = (256, 256)
norm_cfg = dict(type='BN', requires_grad=True)  # SyncBN needs a process group

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(backbone=dict(norm_cfg=norm_cfg)),
    decode_head=dict(norm_cfg=norm_cfg),
    auxiliary_head=dict(norm_cfg=norm_cfg))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(320, 256), ratio_range=(0.75, 1.25),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(320, 256), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(batch_size=1, num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

max_iters = 40
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
                        end=10)]
optim_wrapper = dict(optimizer=dict(lr=1e-3))
default_hooks = dict(logger=dict(interval=10),
                     checkpoint=dict(by_epoch=False, interval=max_iters))
