"""The parity tests' builders: the tiny shape of :mod:`benchmarks.models`.

Random-weight Hugging Face BLIP models and our ``Blip`` with a 2-layer 96-wide ViT on
32 px images and a 2-layer 128-wide text transformer (``vit_tiny_patch8``,
``text_arch='tiny'``), both with the real bert-base-uncased vocabulary.
"""

from benchmarks.models import SHAPES, bert_vocab_dir, hf_blip, our_blip, randomize_

__all__ = ['MINILM_DIR', 'TINY_IMAGE_SIZE', 'randomize_', 'tiny_blip', 'tiny_hf_blip']

MINILM_DIR = bert_vocab_dir()
TINY_IMAGE_SIZE = SHAPES['tiny'].image_size
tiny_hf_blip = hf_blip  # (model_class, seed, *, std, vision_layer_norm_eps); tiny by default
tiny_blip = our_blip  # (losses, *, vision_layer_norm_eps, image_size, **blip_args); tiny by default
