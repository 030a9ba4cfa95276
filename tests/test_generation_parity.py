"""Our caption decoding (``backbones/generation.py``) against Hugging Face transformers' BLIP.

A small random-weight ``BlipForConditionalGeneration`` is loaded into our ``Blip`` with
:func:`backbones.checkpoint.load_checkpoint`; then logits, greedy/beam/nucleus ids and
captions must equal HF's, and our key/value-cached loop must equal a loop that re-runs the
whole sequence every step. Weights are drawn wider than HF's init (and eos is made likelier)
so that captions differ between images and some end before ``max_length``. Beam search is
compared with ``length_normalization='hf'`` (current transformers' rule; our default is BLIP's
transformers 4.15 rule, pinned in ``test_generation_blip_beam.py``).
"""
import pytest
import torch

pytest.importorskip('transformers')

from hf_builders import TINY_IMAGE_SIZE, tiny_blip, tiny_hf_blip  # noqa: E402
from transformers import BlipForConditionalGeneration  # noqa: E402

from backbones.checkpoint import load_checkpoint  # noqa: E402
from backbones.generation import (CachedDecoderSteps, DecodingConfig, beam_search,  # noqa: E402
                                  caption_prompt_ids, generate_captions, generate_ids)

PROMPT = 'a picture of '
HF = 'hf'  # beam search's length normalization of the installed transformers
BOS, SEP, PAD = 30522, 102, 0
SEEDS = (0, 1, 2)
NUM_IMAGES = 4
WEIGHT_STD = 0.1   # HF inits text at 0.02 and vision at 1e-10: captions would not vary
EOS_LOGIT_BOOST = 3.0  # so that some captions end before max_length
HF_VISION_LAYER_NORM_EPS = 1e-5  # ours takes HF's (official BLIP: 1e-6)


def boost_eos_(hf: BlipForConditionalGeneration) -> BlipForConditionalGeneration:
    """Raise the eos logit bias by :data:`EOS_LOGIT_BOOST` (some captions then end early)."""
    with torch.no_grad():
        hf.text_decoder.cls.predictions.bias[SEP] += EOS_LOGIT_BOOST
    return hf


@pytest.fixture(scope='module')
def make_pair():
    """Builds (once per seed) ``(hf_model, our_model, images)`` with identical random weights."""
    built = {}

    def make(seed: int):
        if seed not in built:
            hf = boost_eos_(tiny_hf_blip(BlipForConditionalGeneration, seed, std=WEIGHT_STD,
                                         vision_layer_norm_eps=HF_VISION_LAYER_NORM_EPS))
            ours = tiny_blip(losses=('lm',), prompt=PROMPT,
                             vision_layer_norm_eps=HF_VISION_LAYER_NORM_EPS)
            report = load_checkpoint(ours, hf.state_dict())
            assert report.kind == 'Hugging Face BLIP' and report.loaded
            assert not report.has_problems, str(report)
            images = torch.randn(NUM_IMAGES, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE,
                                 generator=torch.Generator().manual_seed(100 + seed))
            built[seed] = hf, ours, images
        return built[seed]
    return make


@pytest.fixture(params=SEEDS, ids=lambda seed: f'seed{seed}')
def pair(request, make_pair):
    """A model pair per seed in :data:`SEEDS` (for the HF parity of captions)."""
    return make_pair(request.param)


@pytest.fixture
def first_pair(make_pair):
    """The model pair of the first seed (for the slower or HF-independent checks)."""
    return make_pair(SEEDS[0])


def hf_generate(hf, ours, images, **kwargs) -> torch.Tensor:
    """HF BLIP ``generate`` given the tokenized prompt (it swaps [CLS] for bos, drops [SEP])."""
    prompt = ours.tokenizer([PROMPT] * images.shape[0], 40)['input_ids']
    with torch.no_grad():
        return hf.generate(pixel_values=images, input_ids=prompt, max_length=20, min_length=5,
                           **kwargs)


def through_eos(ids: torch.Tensor) -> list:
    """Rows as lists cut after the first eos (HF pads finished beams with eos, we with pad)."""
    rows = []
    for row in ids.tolist():
        rows.append(row[:row.index(SEP) + 1] if SEP in row else row)
    return rows


def our_ids(ours, images, **config) -> torch.Tensor:
    """Our ids for ``images`` with the caption prompt (BLIP's lengths unless overridden)."""
    config = DecodingConfig(eos_token_id=SEP, pad_token_id=PAD, **config)
    return generate_ids(ours.text_decoder, ours.encode_image(images), caption_prompt_ids(ours),
                        config, generator=torch.Generator().manual_seed(0))


def penalized_naively(logits: torch.Tensor, tokens: torch.Tensor, penalty: float):
    """Reference repetition penalty, token by token."""
    logits = logits.clone()
    for row in range(logits.shape[0]):
        for token in set(tokens[row].tolist()):
            value = logits[row, token]
            logits[row, token] = value * penalty if value < 0 else value / penalty
    return logits


def next_token_scores(decoder, image_embeds, tokens, penalty=1.0, min_length=5):
    """Processed next-token logits from a full (uncached) decoder pass."""
    with torch.no_grad():
        logits = decoder(tokens, torch.ones_like(tokens), image_embeds=image_embeds)[:, -1].float()
    logits = penalized_naively(logits, tokens, penalty)
    if tokens.shape[1] < min_length:
        logits[:, SEP] = float('-inf')
    return logits


class FullRecomputeSteps:
    """Test double of :class:`CachedDecoderSteps` that re-runs the whole sequence each step."""

    def __init__(self, decoder, image_embeds, rows_per_image=1):
        self.decoder = decoder
        self.image_embeds = image_embeds.repeat_interleave(rows_per_image, 0)
        self.rows_per_image = rows_per_image
        self.tokens = None

    def start(self, prompt_ids):
        """Logits after the prompt, repeated per row."""
        self.tokens = prompt_ids.repeat_interleave(self.rows_per_image, 0)
        return self.last_logits()

    def advance(self, tokens, parent_rows=None):
        """Logits after appending ``tokens`` to the parents' sequences."""
        previous = self.tokens if parent_rows is None else self.tokens[parent_rows]
        self.tokens = torch.cat([previous, tokens[:, None]], dim=1)
        return self.last_logits()

    def last_logits(self):
        """Next-token logits of a full pass over the current sequences."""
        return self.decoder(self.tokens, torch.ones_like(self.tokens),
                            image_embeds=self.image_embeds)[:, -1]


# ---------------------------------------------------------------- (a) same forward pass
def test_image_embeds_and_decoder_logits_match_hf(pair):
    hf, ours, images = pair
    texts = ['a picture of a red square', 'a picture of two dogs on a mat next to a sofa']
    tokens = ours.caption_tokens(texts)
    with torch.no_grad():
        hf_image = hf.vision_model(pixel_values=images[:2]).last_hidden_state
        our_image = ours.encode_image(images[:2])
        hf_logits = hf.text_decoder(input_ids=tokens['input_ids'],
                                    attention_mask=tokens['attention_mask'],
                                    encoder_hidden_states=hf_image).logits
        our_logits = ours.text_decoder(tokens['input_ids'], tokens['attention_mask'],
                                       image_embeds=our_image)
    torch.testing.assert_close(our_image, hf_image, rtol=0, atol=1e-5)
    torch.testing.assert_close(our_logits, hf_logits, rtol=0, atol=1e-5)


# ---------------------------------------------------------------- (b) greedy / beam vs HF
@pytest.mark.parametrize('num_beams', [1, 3], ids=['greedy', 'beam3'])
def test_ids_and_captions_match_hf_generate(pair, num_beams):
    hf, ours, images = pair
    expected = hf_generate(hf, ours, images, num_beams=num_beams)
    got = our_ids(ours, images, method='beam', num_beams=num_beams, length_normalization=HF)
    assert got.shape == expected.shape
    assert through_eos(got) == through_eos(expected)
    captions = generate_captions(ours, images, method='beam', num_beams=num_beams,
                                 length_normalization=HF)
    assert captions == [text[len(PROMPT):] for text in ours.tokenizer.batch_decode(expected)]


def test_random_weights_give_varied_captions_that_can_end_early(pair):
    """Guards the other tests against degenerate random weights."""
    _, ours, images = pair
    rows = through_eos(our_ids(ours, images, num_beams=3))
    assert len({tuple(row) for row in rows}) > 1
    assert any(row[-1] == SEP for row in rows)


def test_beam_with_repetition_penalty_matches_hf(first_pair):
    hf, ours, images = first_pair
    expected = hf_generate(hf, ours, images, num_beams=3, repetition_penalty=1.3)
    assert through_eos(our_ids(ours, images, num_beams=3, repetition_penalty=1.3,
                               length_normalization=HF)) == through_eos(expected)


def answer_states(ours, rows: int = 3, tokens: int = 7) -> torch.Tensor:
    """Random stand-ins for VQA question states (the answer decoder's cross-attention input)."""
    generator = torch.Generator().manual_seed(5)
    return torch.randn(rows, tokens, ours.med_config.encoder_width, generator=generator)


ANSWER_CONFIG = DecodingConfig(eos_token_id=SEP, pad_token_id=PAD, num_beams=3, max_length=10,
                               min_length=1, length_normalization=HF)  # BLIP's VQA lengths


def test_answer_decoding_from_a_bos_prompt_matches_hf(first_pair):
    """VQA's use: ``[DEC]`` prompt, question states as the cross-attention input."""
    hf, ours, _ = first_pair
    states = answer_states(ours)
    bos = torch.full((states.shape[0], 1), BOS)
    with torch.no_grad():
        # transformers 5 repeats encoder states per beam itself (BLIP's 4.15-era code did it).
        expected = hf.text_decoder.generate(
            input_ids=bos, encoder_hidden_states=states,
            encoder_attention_mask=torch.ones(states.shape[:2], dtype=torch.long),
            num_beams=3, max_length=10, min_length=1, eos_token_id=SEP, pad_token_id=PAD)
    got = generate_ids(ours.text_decoder, states, torch.tensor([BOS]), ANSWER_CONFIG)
    assert through_eos(got) == through_eos(expected)


def test_padded_states_decode_as_if_truncated(first_pair):
    """``image_atts`` hides padded question tokens (HF 5.23's BLIP text model drops this mask)."""
    _, ours, _ = first_pair
    states = answer_states(ours)
    lengths = [7, 4, 2]
    mask = torch.tensor([[1] * n + [0] * (7 - n) for n in lengths])
    padded = generate_ids(ours.text_decoder, states, torch.tensor([BOS]), ANSWER_CONFIG,
                          image_atts=mask)
    for row, n in enumerate(lengths):
        alone = generate_ids(ours.text_decoder, states[row:row + 1, :n], torch.tensor([BOS]),
                             ANSWER_CONFIG)
        assert through_eos(padded[row:row + 1]) == through_eos(alone)


# ---------------------------------------------------------------- (c) nucleus sampling
def test_nucleus_matches_hf_sampling_under_the_same_seed(first_pair):
    """BLIP's sampling call (top-p 0.9, HF's default top-k 50, penalty 1.1), same random stream."""
    hf, ours, images = first_pair
    torch.manual_seed(3)
    expected = hf_generate(hf, ours, images, do_sample=True, top_p=0.9, repetition_penalty=1.1)
    captions = generate_captions(ours, images, method='nucleus',
                                 generator=torch.Generator().manual_seed(3))
    assert captions == [text[len(PROMPT):] for text in ours.tokenizer.batch_decode(expected)]


def test_nucleus_is_seeded_and_samples_inside_the_top_p_set(first_pair):
    _, ours, images = first_pair
    top_p, penalty = 0.9, 1.1
    config = DecodingConfig(eos_token_id=SEP, pad_token_id=PAD, method='nucleus', top_p=top_p,
                            top_k=0, repetition_penalty=penalty)
    image_embeds = ours.encode_image(images).detach()
    prompt = caption_prompt_ids(ours)

    def sample(seed):
        return generate_ids(ours.text_decoder, image_embeds, prompt, config,
                            generator=torch.Generator().manual_seed(seed))

    ids = sample(11)
    assert torch.equal(ids, sample(11))
    assert not torch.equal(ids, sample(12))

    largest_nucleus = 1
    for step in range(prompt.numel(), ids.shape[1]):
        prefix = ids[:, :step]
        live = (prefix != SEP).all(dim=1)
        probs = next_token_scores(ours.text_decoder, image_embeds, prefix, penalty).softmax(-1)
        chosen = probs.gather(1, ids[:, step:step + 1])
        mass_above_chosen = (probs * (probs > chosen)).sum(dim=1)
        assert (mass_above_chosen[live] < top_p + 1e-6).all()
        descending = probs.sort(dim=1, descending=True).values
        nucleus_sizes = ((descending.cumsum(1) - descending) < top_p).sum(dim=1)
        if live.any():
            largest_nucleus = max(largest_nucleus, int(nucleus_sizes[live].max()))
    assert largest_nucleus > 1  # the property was tested on non-trivial nuclei


# ---------------------------------------------------------------- (d) cache vs naive loop
def test_cached_greedy_matches_a_naive_full_recompute_loop(first_pair):
    _, ours, images = first_pair
    penalty = 1.2
    image_embeds = ours.encode_image(images).detach()
    tokens = caption_prompt_ids(ours).expand(images.shape[0], -1)
    running = torch.ones(images.shape[0], dtype=torch.bool)
    while tokens.shape[1] < 20 and running.any():
        next_tokens = next_token_scores(ours.text_decoder, image_embeds, tokens, penalty).argmax(-1)
        next_tokens[~running] = PAD
        running &= next_tokens != SEP
        tokens = torch.cat([tokens, next_tokens[:, None]], dim=1)
    got = our_ids(ours, images, method='greedy', repetition_penalty=penalty)
    assert torch.equal(got, tokens)


def test_cached_beam_search_matches_full_recompute_steps(first_pair):
    _, ours, images = first_pair
    config = DecodingConfig(eos_token_id=SEP, pad_token_id=PAD, num_beams=3,
                            repetition_penalty=1.2)
    image_embeds = ours.encode_image(images).detach()
    prompt = caption_prompt_ids(ours).expand(images.shape[0], -1)
    with torch.no_grad():
        naive = beam_search(FullRecomputeSteps(ours.text_decoder, image_embeds, 3), prompt, config)
        cached = beam_search(CachedDecoderSteps(ours.text_decoder, image_embeds, None, 3),
                             prompt, config)
    assert torch.equal(cached, naive)


# ---------------------------------------------------------------- API guards
def test_length_limits_count_the_prompt(first_pair):
    _, ours, images = first_pair
    assert caption_prompt_ids(ours).tolist() == [BOS, 1037, 3861, 1997]
    with pytest.raises(ValueError, match='max_length'):
        our_ids(ours, images, max_length=4)
    assert our_ids(ours, images, method='greedy', max_length=6).shape[1] <= 6
    rows = through_eos(our_ids(ours, images, num_beams=3, min_length=12))
    assert all(len(row) >= 13 for row in rows)  # eos only once 12 tokens (prompt too) exist


def test_unknown_method_is_rejected():
    with pytest.raises(ValueError, match='decoding method'):
        DecodingConfig(eos_token_id=SEP, pad_token_id=PAD, method='topk')
