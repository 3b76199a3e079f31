"""Adapters' transformer block sites: what each says about a block's residual
stream is what the block computes (the methods that act inside blocks rely on it)."""
import pytest
import torch

import protune_mm  # noqa: F401  (registers the adapters)
from protune_mm import MODELS
from protune_mm.adapters import adapter_for

BACKBONES = {
    'timm-vit': dict(type='protune_mm.TimmViT', model_name='vit_tiny_patch16_224',
                     num_stages=3, model_kwargs=dict(depth=3, embed_dim=32, num_heads=2,
                                       init_values=0.5)),
    'mmseg-vit': dict(type='mmseg.VisionTransformer', img_size=64, patch_size=16,
                      embed_dims=32, num_layers=3, num_heads=2, out_indices=(1, )),
    'swin': dict(type='mmdet.SwinTransformer', embed_dims=16, depths=(2, 1, 1, 1),
                 num_heads=(1, 1, 1, 1), window_size=2, out_indices=(0, 1, 2),
                 init_cfg=None),
}


@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_block_sites_describe_the_residual_stream(name):
    torch.manual_seed(0)
    backbone = MODELS.build(BACKBONES[name])
    backbone.eval()  # (mmdet's Swin.train() returns None: no chaining)
    adapter = adapter_for(backbone)
    handles = adapter.attach()
    sites = adapter.block_sites()
    assert sites and len({id(s.block) for s in sites}) == len(sites)
    seen = {}
    for site in sites:
        def pre(module, args, site=site):
            seen[site.name] = {'x': args[0]}

        def attn(module, args, output, site=site):
            x = seen[site.name]['x']
            seen[site.name]['mid'] = output if site.attn_adds_residual else x + output

        def mlp(module, args, output, site=site):
            mid = seen[site.name]['mid']
            seen[site.name]['out'] = output if site.mlp_adds_residual else mid + output

        def post(module, args, output, site=site):
            seen[site.name]['block'] = output
        handles += [site.block.register_forward_pre_hook(pre),
                    site.attn_out.register_forward_hook(attn),
                    site.mlp_out.register_forward_hook(mlp),
                    site.block.register_forward_hook(post)]
    with torch.no_grad():
        backbone(torch.randn(1, 3, 64, 64))
    for site in sites:
        if 'block' not in seen.get(site.name, {}):
            assert not site.reaches_output, site.name
            continue
        torch.testing.assert_close(seen[site.name]['out'], seen[site.name]['block'],
                                   rtol=1e-6, atol=1e-6, msg=site.name)
        assert seen[site.name]['x'].shape[-1] == site.width
    for h in handles:
        h.remove()
    assert [s.reaches_output for s in sites].count(True) < len(sites) or name == 'timm-vit'
