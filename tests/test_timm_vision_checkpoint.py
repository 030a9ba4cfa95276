"""Initialising BLIP's image encoder from a local timm ViT checkpoint (another resolution)."""
import timm
import torch

from backbones.checkpoint import load_timm_vision_checkpoint
from tests.hf_builders import tiny_blip


def test_timm_vit_checkpoint_loads_with_pos_embed_interpolation(tmp_path):
    torch.manual_seed(0)
    ours = tiny_blip()
    size = ours.visual_encoder.image_size
    shape = dict(patch_size=8, embed_dim=ours.visual_encoder.embed_dim,
                 depth=len(ours.visual_encoder.blocks), num_heads=3)
    timm_vit = timm.models.vision_transformer.VisionTransformer(img_size=size * 2, num_classes=5,
                                                                **shape)
    path = tmp_path / 'vit.pth'
    torch.save(timm_vit.state_dict(), path)
    report = load_timm_vision_checkpoint(ours, path)
    assert torch.equal(ours.visual_encoder.blocks[0].attn.qkv.weight,
                       timm_vit.blocks[0].attn.qkv.weight)
    assert any('pos_embed' in str(item) for item in report.reshaped)
    assert ours.visual_encoder.pos_embed.shape[1] == (size // 8) ** 2 + 1
    assert dict(report.ignored)['head.weight'].startswith('ImageNet classifier')
    assert not report.has_problems  # the text side is outside a ViT file, not missing
    assert any(key.startswith('text_encoder.') for key in report.not_in_source)
    assert ('visual_encoder_m.cls_token', 'visual_encoder.cls_token') in report.copied
    assert torch.equal(ours.visual_encoder_m.blocks[0].attn.qkv.weight,
                       timm_vit.blocks[0].attn.qkv.weight)
