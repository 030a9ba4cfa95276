"""Building the model a checkpoint describes (``BlipFromCheckpoint``) and loading it strictly.

Hugging Face BLIP directories and official-layout ``.pth`` files of shapes that are NOT
BLIP-base's (other widths, depths, MLP ratios, patch, resolution, projection width) must
build, load every tensor the evaluation reads and give the source model's outputs.
"""
import json

import pytest
import torch
from hf_builders import MINILM_DIR, built_and_loaded, randomize_, save_blip_tokenizer
from transformers import (BlipConfig, BlipForConditionalGeneration, BlipForImageTextRetrieval,
                          BlipForQuestionAnswering)

from backbones.checkpoint import CheckpointError, save_official_checkpoint
from backbones.from_checkpoint import blip_from_checkpoint
from harness.core.registry import MODELS

TEXTS = ['a red circle above a blue square', 'two dogs play in the snow', 'a cat']
TOLERANCE = dict(atol=1e-5, rtol=0)
HF_VISION = dict(hidden_size=128, intermediate_size=384, num_hidden_layers=3,
                 num_attention_heads=4, patch_size=8, image_size=48, layer_norm_eps=1e-5)
HF_TEXT = dict(vocab_size=30524, bos_token_id=30522, pad_token_id=0, sep_token_id=102,
               hidden_size=192, num_hidden_layers=2, num_attention_heads=3,
               intermediate_size=320, max_position_embeddings=64, layer_norm_eps=1e-12,
               encoder_hidden_size=128)


def pixels(size, count=2, seed=0):
    """Random normalised-looking images."""
    return torch.randn(count, 3, size, size, generator=torch.Generator().manual_seed(seed))


def save_hf(model_class, directory, seed=0):
    """A random ``model_class`` of non-base shapes saved with a transformers-5 tokenizer.json."""
    config = BlipConfig(vision_config=HF_VISION, text_config=HF_TEXT, image_text_hidden_size=48)
    hf = randomize_(model_class(config), seed).eval()
    hf.save_pretrained(directory)
    save_blip_tokenizer(directory)
    return hf


@torch.no_grad()
def test_huggingface_caption_directory_builds_loads_and_matches(tmp_path):
    hf = save_hf(BlipForConditionalGeneration, tmp_path, seed=1)
    assert not (tmp_path / 'vocab.txt').exists()  # transformers 5 writes tokenizer.json only
    model, coverage = built_and_loaded(tmp_path, prompt='a picture of ')

    assert model.losses == ('lm',) and model.image_size == 48
    assert model.visual_encoder.width == 128 and len(model.visual_encoder.blocks) == 3
    assert model.med_config.hidden_size == 192 and model.med_config.num_attention_heads == 3
    assert model.visual_encoder.norm.eps == 1e-5
    assert coverage['loaded'] == coverage['expected'] and 'not_loaded' not in coverage
    assert model.num_parameters() == sum(p.numel() for p in hf.parameters())

    images = pixels(48, count=len(TEXTS))
    tokens = model.tokenize(TEXTS)
    ids = model.with_first_token(tokens['input_ids'], model.tokenizer.bos_token_id)
    mask = tokens['attention_mask']
    hf_logits = hf(pixel_values=images, input_ids=ids, attention_mask=mask).logits
    logits = model.text_decoder(ids, mask, image_embeds=model.visual_encoder(images))
    torch.testing.assert_close(logits, hf_logits, **TOLERANCE)


@torch.no_grad()
def test_huggingface_retrieval_directory_builds_loads_and_matches(tmp_path):
    hf = save_hf(BlipForImageTextRetrieval, tmp_path, seed=2)
    model, coverage = built_and_loaded(tmp_path)
    assert model.losses == ('itc', 'itm') and model.embed_dim == 48
    assert coverage['loaded'] == coverage['expected']

    images = pixels(48)
    tokens = model.tokenize(TEXTS)
    ids, mask = tokens['input_ids'], tokens['attention_mask']
    embeds = model.visual_encoder(images)
    hf_sims = hf(input_ids=ids, attention_mask=mask, pixel_values=images,
                 use_itm_head=False).itm_score
    sims = model.image_features(embeds) @ model.text_features(ids, mask).T
    torch.testing.assert_close(sims, hf_sims, **TOLERANCE)
    enc_ids = model.with_first_token(ids[:2], model.tokenizer.enc_token_id)
    hf_itm = hf(input_ids=enc_ids, attention_mask=mask[:2], pixel_values=images).itm_score
    torch.testing.assert_close(model.itm_logits(ids[:2], mask[:2], image_embeds=embeds), hf_itm,
                               **TOLERANCE)


def test_huggingface_vqa_directory_whose_decoder_cannot_run_is_refused(tmp_path):
    """Its answer decoder is sized for 128-wide image tokens but answers 192-wide question
    states (Hugging Face sizes it by the ViT); buildable VQA directories are tested in
    test_vqa_checkpoints.py."""
    save_hf(BlipForQuestionAnswering, tmp_path)
    with pytest.raises(CheckpointError, match="answer decoder's cross-attention .* reads "
                                              "128-wide states"):
        blip_from_checkpoint(tmp_path)


def test_a_text_encoder_without_any_head_is_refused_with_the_reason(tmp_path):
    source = official_source(('itc',))
    state = {key: value for key, value in source.state_dict().items()
             if key.startswith(('visual_encoder.', 'text_encoder.'))}
    torch.save({'model': state}, tmp_path / 'encoder.pth')
    with pytest.raises(CheckpointError, match='feature extractor'):
        blip_from_checkpoint(tmp_path / 'encoder.pth', bert_dir=str(MINILM_DIR))


def test_huggingface_special_token_ids_must_match_the_tokenizer(tmp_path):
    save_hf(BlipForConditionalGeneration, tmp_path)
    config = json.loads((tmp_path / 'config.json').read_text())
    config['text_config']['bos_token_id'] = 7
    (tmp_path / 'config.json').write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r'bos_token_id 30522 \(checkpoint: 7\)'):
        blip_from_checkpoint(tmp_path)


def official_source(losses, **blip_args):
    """Our random BLIP with 64-wide heads but otherwise non-base shapes (as official BLIP's
    head width lets the loader infer the head count)."""
    config = dict(type='Blip', losses=losses, text_arch='tiny', queue_size=24, embed_dim=40,
                  text_overrides=dict(num_attention_heads=2, intermediate_size=384),
                  vision=dict(type='BlipViT', arch='custom', patch_size=8, embed_dim=128,
                              depth=3, num_heads=2, image_size=40, mlp_ratio=3.0),
                  tokenizer=dict(type='BlipTokenizer', vocab=str(MINILM_DIR)))
    config.update(blip_args)
    torch.manual_seed(0)
    return randomize_(MODELS.build(config), seed=3).eval()


@torch.no_grad()
@pytest.mark.parametrize('losses, sharing', [(('itc', 'itm', 'lm'), 'all_but_sa'),
                                             (('itc', 'itm', 'lm'), 'none'),
                                             (('lm',), 'all_but_sa'), (('itc', 'itm'), 'all')])
def test_official_pth_builds_loads_and_matches(tmp_path, losses, sharing):
    source = official_source(losses, sharing=sharing)
    path = tmp_path / 'model.pth'
    save_official_checkpoint(source, path)
    with pytest.raises(CheckpointError, match='bert_dir='):
        blip_from_checkpoint(path)
    model, coverage = built_and_loaded(path, bert_dir=str(MINILM_DIR))

    assert model.losses == losses and model.image_size == 40
    assert model.num_parameters() == source.num_parameters()
    assert coverage['loaded'] == coverage['expected']
    if 'lm' in losses and 'itm' in losses:
        assert model.sharing == sharing
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key

    images = pixels(40, count=len(TEXTS))
    tokens = model.tokenize(TEXTS)
    ids, mask = tokens['input_ids'], tokens['attention_mask']
    for built, reference in [(model, source)]:
        embeds, expected = built.visual_encoder(images), reference.visual_encoder(images)
        assert torch.equal(embeds, expected)
        if 'lm' in losses:
            dec = built.with_first_token(ids, built.tokenizer.bos_token_id)
            assert torch.equal(built.text_decoder(dec, mask, image_embeds=embeds),
                               reference.text_decoder(dec, mask, image_embeds=expected))
        if 'itc' in losses:
            assert torch.equal(built.text_features(ids, mask), reference.text_features(ids, mask))


def test_official_pth_head_count_needs_an_override_off_64_wide_heads(tmp_path):
    source = official_source(('lm',), vision=dict(type='BlipViT', arch='vit_tiny_patch8',
                                                  image_size=32))
    path = tmp_path / 'model.pth'
    save_official_checkpoint(source, path)
    with pytest.raises(CheckpointError, match=r'num_heads=\.\.\.'):
        blip_from_checkpoint(path, bert_dir=str(MINILM_DIR))
    model, coverage = built_and_loaded(path, bert_dir=str(MINILM_DIR), vision=dict(num_heads=3))
    assert coverage['loaded'] == coverage['expected']
    images = pixels(32)
    assert torch.equal(model.visual_encoder(images), source.visual_encoder(images))
