"""Static decoding (``backbones/static_decoding.py``) against the cached decoder.

On the CPU the fixed-shape step runs eagerly, so these tests check what the CUDA graph
replays: the same logits as :class:`CachedDecoderSteps` through beam reorders, the same ids
for every decoding method (the padded VQA states included), and a kept step that is reused
only while shapes and weights are unchanged. Where CUDA is present the logits and ids are
also checked with the step replayed as a graph (fp32).
"""
import copy
from unittest.mock import ANY

import pytest
import torch

from hf_builders import TINY_IMAGE_SIZE, tiny_blip

from backbones import static_decoding
from backbones.generation import (CachedDecoderSteps, DecodingConfig, caption_prompt_ids,
                                  generate_ids)
from backbones.static_decoding import StaticDecoderSteps, captured_step

SEP, PAD, BOS = 102, 0, 30522
MAX_LENGTH = 12
DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])


@pytest.fixture(scope='module')
def model():
    """A tiny BLIP whose captions vary and sometimes end early (wide weights, eos boosted)."""
    torch.manual_seed(0)
    blip = tiny_blip(losses=('lm',), prompt='a picture of ').eval()
    with torch.no_grad():
        for parameter in blip.text_decoder.parameters():
            parameter.normal_(0, 0.1)
        blip.text_decoder.cls.predictions.bias[SEP] += 3.0
    return blip


@pytest.fixture(scope='module')
def image_embeds(model):
    """Image tokens of 4 random images."""
    images = torch.randn(4, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE,
                         generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return model.encode_image(images)


@pytest.fixture(scope='module')
def on_device(model, image_embeds):
    """``(model, image_embeds)`` on a device of :data:`DEVICES` (one copy per device)."""
    copies = {'cpu': (model, image_embeds)}

    def get(device):
        if device not in copies:
            copies[device] = copy.deepcopy(model).to(device), image_embeds.to(device)
        return copies[device]
    return get


def question_states(model):
    """Stand-ins for VQA question states, padded to 7 tokens with a mask."""
    states = torch.randn(3, 7, model.med_config.encoder_width,
                         generator=torch.Generator().manual_seed(5))
    mask = torch.tensor([[1] * n + [0] * (7 - n) for n in (7, 4, 2)])
    return states, mask


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('masked', [False, True], ids=['images', 'padded-states'])
def test_step_logits_equal_the_cached_decoder_through_beam_reorders(on_device, masked,
                                                                    device):
    model, image_embeds = on_device(device)
    beams = 3
    if masked:
        states, mask = (tensor.to(device) for tensor in question_states(model))
    else:
        states, mask = image_embeds, None
    prompt = caption_prompt_ids(model, device).expand(states.shape[0], -1)
    rows = states.shape[0] * beams
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        cached = CachedDecoderSteps(model.text_decoder, states, mask, beams)
        static = StaticDecoderSteps(model.text_decoder, states, mask, beams,
                                    max_length=MAX_LENGTH)
        torch.testing.assert_close(static.start(prompt), cached.start(prompt), rtol=0,
                                   atol=1e-5)
        for step in range(MAX_LENGTH - prompt.shape[1]):
            tokens = torch.randint(1000, (rows,), generator=generator).to(device)
            # Each row continues one of its image's beams (step 0: the identity).
            parents = None if step == 0 else (
                torch.randint(beams, (rows,), generator=generator)
                + torch.arange(rows) // beams * beams).to(device)
            torch.testing.assert_close(static.advance(tokens, parents),
                                       cached.advance(tokens, parents), rtol=0, atol=1e-5)
        with pytest.raises(ValueError, match='full'):
            static.advance(tokens)


DECODINGS = {
    'beam-blip': dict(method='beam', num_beams=3),
    'beam-hf': dict(method='beam', num_beams=3, length_normalization='hf'),
    'greedy': dict(method='greedy'),
    'nucleus': dict(method='nucleus', repetition_penalty=1.1),
    'beam-penalty': dict(method='beam', num_beams=2, repetition_penalty=1.3),
}


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('decoding', DECODINGS.values(), ids=DECODINGS.keys())
def test_ids_equal_the_cached_decoder(on_device, decoding, device):
    model, image_embeds = on_device(device)
    config = DecodingConfig(eos_token_id=SEP, pad_token_id=PAD, max_length=MAX_LENGTH,
                            **decoding)
    prompt = caption_prompt_ids(model, device)

    def ids(cuda_graphs):
        generator = torch.Generator(device).manual_seed(4)
        return generate_ids(model.text_decoder, image_embeds, prompt, config,
                            generator=generator, cuda_graphs=cuda_graphs)

    plain = ids(False)
    assert torch.equal(ids(True), plain)
    rows = [row.tolist() for row in plain]
    assert len({tuple(row) for row in rows}) > 1  # the check is not vacuous
    assert any(SEP in row[:MAX_LENGTH - 1] for row in rows)  # some ended early


def test_padded_answer_states_decode_as_the_cached_decoder(model):
    states, mask = question_states(model)
    config = DecodingConfig(eos_token_id=SEP, pad_token_id=PAD, num_beams=3, max_length=10,
                            min_length=1)
    bos = torch.tensor([BOS])
    plain = generate_ids(model.text_decoder, states, bos, config, image_atts=mask)
    static = generate_ids(model.text_decoder, states, bos, config, image_atts=mask,
                          cuda_graphs=True)
    assert torch.equal(static, plain)


def test_the_kept_step_is_reused_only_for_the_same_shapes_and_weights(model, image_embeds):
    decoder = model.text_decoder

    def step(embeds):
        return captured_step(decoder, embeds, False, 3, MAX_LENGTH, embeds.dtype)

    first = step(image_embeds)
    assert step(image_embeds.clone()) is first
    assert step(image_embeds[:2]) is not first  # another batch size: a new step
    resized = step(image_embeds[:2])
    bias = decoder.cls.predictions.bias
    original = bias.data
    bias.data = original.clone()  # new storage (as after .to()): the old graph is stale
    try:
        rebuilt = step(image_embeds[:2])
        assert rebuilt is not resized
        assert static_decoding._GRAPHS[decoder] == (ANY, rebuilt)  # one kept step per decoder
    finally:
        bias.data = original


def test_buffers_hold_the_autocast_projections_of_the_image(model, image_embeds):
    # One [keys | values] product per layer, cast as autocast casts F.linear, writes what
    # the layer's own projections give under autocast, in their dtype.
    decoder = model.text_decoder
    prompt = caption_prompt_ids(model).expand(image_embeds.shape[0], -1)
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        static = StaticDecoderSteps(decoder, image_embeds, None, 3, max_length=MAX_LENGTH)
        for layer, rows in zip(decoder.bert.encoder.layer, static.buffers.image_kv_rows):
            keys, values = layer.crossattention.self.project_key_value(image_embeds)
            assert rows.dtype == keys.dtype == torch.bfloat16
            assert torch.equal(rows[:, :, 0].transpose(1, 2), keys)
            assert torch.equal(rows[:, :, 1].transpose(1, 2), values)
        cached = CachedDecoderSteps(decoder, image_embeds, None, 3)
        torch.testing.assert_close(static.start(prompt), cached.start(prompt), rtol=0,
                                   atol=1e-2)


def test_static_decoding_refuses_training_mode(model, image_embeds):
    model.text_decoder.train()
    try:
        with pytest.raises(ValueError, match='eval mode'):
            StaticDecoderSteps(model.text_decoder, image_embeds, max_length=MAX_LENGTH)
    finally:
        model.text_decoder.eval()


def test_captions_through_the_model_api_are_the_same(model):
    """``generate_captions(cuda_graphs=True)``, as a caption task's ``decoding`` passes it."""
    images = torch.randn(3, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE,
                         generator=torch.Generator().manual_seed(6))
    plain = model.generate_captions(images, max_length=MAX_LENGTH)
    assert model.generate_captions(images, max_length=MAX_LENGTH, cuda_graphs=True) == plain


def test_a_beam_reorder_moves_no_keys_or_values_only_the_history(model, image_embeds):
    prompt = caption_prompt_ids(model).expand(4, -1)
    with torch.no_grad():
        steps = StaticDecoderSteps(model.text_decoder, image_embeds, None, 3,
                                   max_length=MAX_LENGTH)
        steps.start(prompt)
        steps.advance(torch.full((12,), 1037))
        cache, history = steps.buffers.self_cache.clone(), steps.buffers.history.clone()
        parents = torch.tensor([2, 2, 0, 3, 3, 3, 8, 6, 7, 11, 9, 9])
        steps.advance(torch.full((12,), 2003), parents)
    written = steps.length - 1  # the position the second step wrote
    after = steps.buffers.self_cache
    assert torch.equal(after[..., :written, :], cache[..., :written, :])  # nothing moved
    assert not torch.equal(after[..., written, :], cache[..., written, :])
    assert torch.equal(steps.buffers.history[:, :written], history[parents, :written])
    assert torch.equal(steps.buffers.history[:, written], torch.arange(12))
