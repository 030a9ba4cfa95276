"""The parity tests' builders: the tiny shape of :mod:`benchmarks.models`.

Random-weight Hugging Face BLIP models and our ``Blip`` with a 2-layer 96-wide ViT on
32 px images and a 2-layer 128-wide text transformer (``vit_tiny_patch8``,
``text_arch='tiny'``), both with the real bert-base-uncased vocabulary.
"""
from transformers import BertTokenizer

from backbones.checkpoint import load_for_evaluation
from benchmarks.models import SHAPES, bert_vocab_dir, hf_blip, our_blip, randomize_
from harness.core.registry import MODELS

__all__ = ['MINILM_DIR', 'TINY_IMAGE_SIZE', 'built_and_loaded', 'randomize_',
           'save_blip_tokenizer', 'tiny_blip', 'tiny_hf_blip']

MINILM_DIR = bert_vocab_dir()
TINY_IMAGE_SIZE = SHAPES['tiny'].image_size
tiny_hf_blip = hf_blip  # (model_class, seed, *, std, vision_layer_norm_eps); tiny by default
tiny_blip = our_blip  # (losses, *, vision_layer_norm_eps, image_size, **blip_args); tiny by default


def save_blip_tokenizer(directory) -> None:
    """Save BLIP's tokenizer (bert-base-uncased + ``[DEC]`` + ``[ENC]``) into ``directory``,
    as a Hugging Face BLIP checkpoint folder holds it (transformers 5 writes tokenizer.json)."""
    tokenizer = BertTokenizer(str(MINILM_DIR / 'vocab.txt'), do_lower_case=True)
    tokenizer.add_special_tokens({'bos_token': '[DEC]'})
    tokenizer.add_special_tokens({'additional_special_tokens': ['[ENC]']})
    tokenizer.save_pretrained(directory)


def built_and_loaded(checkpoint, **args):
    """``BlipFromCheckpoint`` of ``checkpoint`` loaded strictly for evaluation, in eval mode,
    with the load coverage."""
    model = MODELS.build(dict(type='BlipFromCheckpoint', checkpoint=str(checkpoint), **args))
    coverage = load_for_evaluation(model, checkpoint, strict=True)
    return model.eval(), coverage
