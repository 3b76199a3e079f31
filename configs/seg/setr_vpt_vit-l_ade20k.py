# VPT-deep prompts (10 tokens per layer) on a frozen ViT-L/16 in SETR-PUP on ADE20K (512x512 crops, 160k iters): the VPT paper's Table 3 setting; data/schedule from mmseg's setr_vit-l_pup_8xb2-160k_ade20k-512x512, AdamW as upernet_vpt_vit-b_ade20k.py.
_base_ = ['mmseg::setr/setr_vit-l_pup_8xb2-160k_ade20k-512x512.py', '../_base_/protune_runtime.py', '../_base_/protune_optim.py']

# The stock mmseg VisionTransformer (ViT-L/16, outputs of layers 9, 14, 19, 23) in
# VPT, frozen and in eval mode; its weights come from the stock init_cfg
# (pretrain/vit_large_p16.pth, converted as mmseg's SETR README says).
# VPT paper (Jia et al., ECCV 2022), Table 3, ADE20K with SETR-PUP on ViT-L/16:
# VPT-deep tunes 13.43M parameters, head-only 13.18M; the 0.25M difference is
# 10 tokens x 24 layers x 1024 dims = 245,760. Prompts go after CLS, one set per
# layer (VPT-deep).
model = dict(backbone=dict(_delete_=True, type='protune_mm.VPT',
                           backbone=_base_.model.backbone,
                           num_tokens=10, deep=True, dropout=0.1))

# AdamW lr 1.2e-4 + warm-up/poly as upernet_vpt_vit-b_ade20k.py (the stock SETR
# config uses SGD with lr x10 on the heads); prompts get no weight decay, as in
# VPT.
param_scheduler = _base_.protune_optim.seg_schedule
optim_wrapper = _base_.pop('protune_optim').seg_vpt
