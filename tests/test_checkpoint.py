"""Checkpoint interop: official BLIP round trips, Hugging Face BLIP parity, BERT init, safety."""
import pytest
import torch
from hf_builders import MINILM_DIR, TINY_IMAGE_SIZE, randomize_, tiny_blip, tiny_hf_blip
from safetensors.torch import load_file as load_safetensors
from transformers import BertModel, BlipForConditionalGeneration, BlipForImageTextRetrieval

from backbones.checkpoint import (CheckpointError, UnsafeCheckpointError, load_checkpoint,
                                  official_state_dict, save_official_checkpoint)
from backbones.key_maps import bert_to_model
from backbones.vit import interpolate_pos_embed

TEXTS = ['a red circle above a blue square', 'two dogs play in the snow', 'a cat']
TOLERANCE = dict(atol=1e-5, rtol=0)


def images(count=2, size=TINY_IMAGE_SIZE, seed=0):
    """Random normalised-looking images."""
    return torch.randn(count, 3, size, size, generator=torch.Generator().manual_seed(seed))


def model_outputs(model, pixels):
    """ITC similarities, ITM logits and decoder logits of a full (itc+itm+lm) model."""
    tokens = model.tokenize(TEXTS)
    ids, mask = tokens['input_ids'], tokens['attention_mask']
    embeds = model.visual_encoder(pixels)
    sims = model.image_features(embeds) @ model.text_features(ids, mask).T
    itm = model.itm_logits(ids[:2], mask[:2], image_embeds=embeds)
    decoder_ids = model.with_first_token(ids, model.tokenizer.bos_token_id)
    lm = model.text_decoder(decoder_ids[:2], mask[:2], image_embeds=embeds)
    return sims, itm, lm


@pytest.fixture(scope='module')
def official_state():
    """A random tiny model's state dict in official BLIP's layout (copy it before editing)."""
    return official_state_dict(randomize_(tiny_blip(), seed=3))


# ---------------------------------------------------------------- official layout
@torch.no_grad()
def test_official_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    source = randomize_(tiny_blip(), seed=1)
    path = tmp_path / 'blip.pth'
    save_official_checkpoint(source, path)
    saved = torch.load(path, weights_only=True)['model']
    assert {'image_queue', 'text_queue', 'idx_queue', 'ptr_queue'} <= saved.keys()
    assert 'text_decoder.cls.predictions.decoder.bias' in saved

    torch.manual_seed(1)
    target = tiny_blip()
    report = load_checkpoint(target, path, strict=True)
    assert not report.has_problems and not report.reshaped and not report.copied
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key
    for ours, theirs in zip(model_outputs(target, images()), model_outputs(source, images())):
        assert torch.equal(ours, theirs)


def test_missing_unexpected_and_mismatched_keys_are_named(tmp_path, official_state):
    state = dict(official_state)
    del state['itm_head.bias']
    state['itm_head.extra'] = torch.zeros(3)
    state['vision_proj.weight'] = torch.zeros(7, 96)
    path = tmp_path / 'broken.pth'
    torch.save({'model': state}, path)

    model = tiny_blip()
    before = model.vision_proj.weight.clone()
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(model, path, strict=True)
    for key in ('itm_head.bias', 'itm_head.extra', 'vision_proj.weight', str(path)):
        assert key in str(raised.value)
    assert 'unchanged' in str(raised.value)

    report = load_checkpoint(model, path)
    assert report.missing == ['itm_head.bias']
    assert report.unexpected == ['itm_head.extra']
    [mismatch] = report.mismatched
    assert (mismatch.key, mismatch.checkpoint_shape, mismatch.model_shape) == \
        ('vision_proj.weight', (7, 96), (256, 96))
    assert torch.equal(model.vision_proj.weight, before)  # kept, not silently zeroed


@torch.no_grad()
def test_pos_embed_at_another_resolution_is_interpolated_and_reported():
    source = randomize_(tiny_blip(image_size=48), seed=2)
    state = official_state_dict(source)
    model = tiny_blip()
    report = load_checkpoint(model, state)
    reshaped = {item.key: item for item in report.reshaped}
    assert reshaped['visual_encoder.pos_embed'].old_shape == (1, 37, 96)
    assert reshaped['visual_encoder.pos_embed'].new_shape == (1, 17, 96)
    assert '6x6 -> 4x4' in reshaped['visual_encoder.pos_embed'].how
    assert 'visual_encoder_m.pos_embed' in reshaped
    expected = interpolate_pos_embed(source.visual_encoder.pos_embed, 16)
    assert torch.equal(model.visual_encoder.pos_embed, expected)
    assert 'visual_encoder.pos_embed' in str(report)

    resized = tiny_blip()
    report = load_checkpoint(resized, state, image_size=48, strict=True)
    assert not report.reshaped and 'visual_encoder switched from 32 to 48 px' in report.notes
    pixels = images(size=48)
    assert torch.equal(resized.visual_encoder(pixels), source.visual_encoder(pixels))


def test_disagreeing_copies_of_a_shared_module_are_reported(official_state):
    state = dict(official_state)
    shared_copy = 'text_decoder.bert.embeddings.LayerNorm.weight'  # shared under all_but_sa
    state[shared_copy] = state[shared_copy].clone() + 1

    model = tiny_blip(sharing='all_but_sa')
    report = load_checkpoint(model, state)
    [disagreement] = report.disagreeing
    assert disagreement.kept == 'text_encoder.embeddings.LayerNorm.weight'
    assert disagreement.differing == [shared_copy]
    assert torch.equal(model.text_encoder.embeddings.LayerNorm.weight,
                       state['text_encoder.embeddings.LayerNorm.weight'])
    with pytest.raises(CheckpointError, match='disagree'):
        load_checkpoint(model, state, strict=True)

    unshared = tiny_blip(sharing='none')  # separate modules: both copies load as they are
    assert not load_checkpoint(unshared, state, strict=True).disagreeing
    assert torch.equal(unshared.text_decoder.bert.embeddings.LayerNorm.weight, state[shared_copy])


# ---------------------------------------------------------------- safety
class MarkerPayload:
    """Unpickling this object creates a marker file (a stand-in for arbitrary code)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), 'w')


def test_malicious_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / 'payload_ran'
    path = tmp_path / 'evil.pth'
    torch.save({'model': {'itm_head.bias': torch.zeros(2)}, 'extra': MarkerPayload(marker)}, path)

    with pytest.raises(UnsafeCheckpointError) as raised:
        load_checkpoint(tiny_blip(), path)
    message = str(raised.value)
    assert str(path) in message and 'weights_only' in message and 'open' in message
    assert not marker.exists()
    torch.load(path, weights_only=False)  # proof the payload is live: full unpickling runs it
    assert marker.exists()


# ---------------------------------------------------------------- Hugging Face parity
@torch.no_grad()
def test_huggingface_retrieval_model_matches(tmp_path):
    hf_model = tiny_hf_blip(BlipForImageTextRetrieval, seed=4)
    hf_model.save_pretrained(tmp_path)
    model = tiny_blip(losses=('itc', 'itm'), vision_layer_norm_eps=1e-5)
    report = load_checkpoint(model, tmp_path, strict=True)
    assert report.kind == 'Hugging Face BLIP' and not report.notes
    assert {'temp', 'queue.image_queue'} <= set(report.not_in_source)
    assert ('visual_encoder_m.cls_token', 'visual_encoder.cls_token') in report.copied

    pixels = images()
    tokens = model.tokenize(TEXTS)
    ids, mask = tokens['input_ids'], tokens['attention_mask']
    hf_sims = hf_model(input_ids=ids, attention_mask=mask, pixel_values=pixels,
                       use_itm_head=False).itm_score
    embeds = model.visual_encoder(pixels)
    sims = model.image_features(embeds) @ model.text_features(ids, mask).T
    torch.testing.assert_close(sims, hf_sims, **TOLERANCE)

    enc_ids = model.with_first_token(ids[:2], model.tokenizer.enc_token_id)
    hf_itm = hf_model(input_ids=enc_ids, attention_mask=mask[:2], pixel_values=pixels).itm_score
    torch.testing.assert_close(model.itm_logits(ids[:2], mask[:2], image_embeds=embeds), hf_itm,
                               **TOLERANCE)

    flat = load_safetensors(str(tmp_path / 'model.safetensors'))  # a [D] class embedding
    cls_key = 'vision_model.embeddings.class_embedding'
    flat[cls_key] = flat[cls_key][0, 0]
    [reshaped] = load_checkpoint(model, flat, strict=True).reshaped
    assert (reshaped.key, reshaped.old_shape, reshaped.new_shape) == \
        ('visual_encoder.cls_token', (96,), (1, 1, 96))


@torch.no_grad()
def test_huggingface_caption_model_matches(tmp_path):
    hf_model = tiny_hf_blip(BlipForConditionalGeneration, seed=5)
    hf_model.save_pretrained(tmp_path, max_shard_size='8MB')
    assert (tmp_path / 'model.safetensors.index.json').is_file()
    model = tiny_blip(losses=('lm',), vision_layer_norm_eps=1e-5)
    report = load_checkpoint(model, tmp_path, strict=True)  # tied LM weight stored once: fine
    assert not report.not_in_source and not report.copied

    pixels = images(3)
    tokens = model.tokenize(TEXTS)
    ids = model.with_first_token(tokens['input_ids'], model.tokenizer.bos_token_id)
    mask = tokens['attention_mask']
    hf_logits = hf_model(pixel_values=pixels, input_ids=ids, attention_mask=mask).logits
    logits = model.text_decoder(ids, mask, image_embeds=model.visual_encoder(pixels))
    torch.testing.assert_close(logits, hf_logits, **TOLERANCE)


# ---------------------------------------------------------------- BERT initialisation
def test_bert_key_names_map_to_encoder_and_decoder():
    assert bert_to_model('bert.embeddings.LayerNorm.gamma') == [
        'text_encoder.embeddings.LayerNorm.weight', 'text_decoder.bert.embeddings.LayerNorm.weight']
    assert bert_to_model('cls.predictions.decoder.bias') == ['text_decoder.cls.predictions.bias']
    assert bert_to_model('cls.seq_relationship.weight') == []
    assert bert_to_model('pooler.dense.weight') == []


MINILM_SHAPE = dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                    intermediate_size=1536, max_position_embeddings=512, layer_norm_eps=1e-12)


@torch.no_grad()
def test_bert_checkpoint_initialises_the_text_side():
    """As BLIP's ``BertModel``/``BertLMHeadModel.from_pretrained('bert-base-uncased')``:
    BLIP's embeddings are word + position only (med.py ``BertEmbeddings``), so BERT's token
    types are dropped, as are its pooler (``add_pooling_layer=False``); cross-attention, which
    BERT lacks, stays newly initialised."""
    model = tiny_blip(text_overrides=MINILM_SHAPE)
    report = load_checkpoint(model, MINILM_DIR)

    assert report.kind == 'BERT' and not report.has_problems
    dropped = dict(report.ignored)
    assert sorted(dropped) == ['embeddings.position_ids', 'embeddings.token_type_embeddings.weight',
                               'pooler.dense.bias', 'pooler.dense.weight']
    assert 'token types' in dropped['embeddings.token_type_embeddings.weight']
    assert 'embeddings.token_type_embeddings.weight (token types' in str(report)
    assert 'text_encoder.encoder.layer.5.crossattention.self.key.weight' in report.newly_initialised
    assert all('.crossattention.' in key or key.startswith('text_decoder.cls.')
               for key in report.newly_initialised)
    [vocab] = report.reshaped
    assert vocab.key == 'text_encoder.embeddings.word_embeddings.weight'
    assert (vocab.old_shape, vocab.new_shape) == ((30522, 384), (30524, 384))
    assert any(key.startswith('visual_encoder.') for key in report.not_in_source)

    bert = BertModel.from_pretrained(MINILM_DIR, add_pooling_layer=False).eval()
    tokens = model.tokenize(TEXTS)
    ids, mask = tokens['input_ids'], tokens['attention_mask']
    assert int(ids.max()) < 30522
    with_token_types = bert(input_ids=ids, attention_mask=mask).last_hidden_state
    bert.embeddings.token_type_embeddings.weight.zero_()  # BLIP's embeddings: no token types
    expected = bert(input_ids=ids, attention_mask=mask).last_hidden_state
    valid = mask.bool()
    assert ('text_encoder_m.encoder.layer.0.crossattention.self.key.weight',
            'text_encoder.encoder.layer.0.crossattention.self.key.weight') in report.copied
    for encoder in (model.text_encoder, model.text_encoder_m):
        hidden = encoder(ids, mask, mode='text')[valid]
        torch.testing.assert_close(hidden, expected[valid], **TOLERANCE)
        assert (hidden - with_token_types[valid]).abs().max() > 1e-2  # the drop is visible
    decoder_query = model.text_decoder.bert.encoder.layer[0].attention.self.query
    encoder_query = model.text_encoder.encoder.layer[0].attention.self.query
    assert decoder_query is not encoder_query  # unshared under all_but_sa, yet BERT-initialised
    assert torch.equal(decoder_query.weight, encoder_query.weight)
