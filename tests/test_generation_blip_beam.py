"""Beam search's length normalization: BLIP's transformers 4.15 rule against today's HF rule.

A fake decoder gives fixed next-token probabilities per generated prefix, so every score
is known by hand. The expected picks follow from the two definitions (length penalty 1.0):

* ``'blip'``, transformers 4.15 (``generation_beam_search.py``): ``BeamHypotheses.add``
  scores a hypothesis ending in eos ``sum log p / len(hyp)``, ``hyp`` being prompt +
  generated tokens without eos; ``BeamSearchScorer.process`` marks an image done when
  ``num_beams`` hypotheses exist and the worst is ``>=`` the best of the step's
  ``2 * num_beams`` candidates divided by the current sequence length; at ``max_length``
  ``finalize`` adds the running beams of images not done, no eos, over ``max_length``.
* ``'hf'``, transformers 5.x (``generation/utils.py``, ``_update_finished_beams``):
  ``sum log p / generated tokens``, eos included, prompt not; at ``max_length`` the top
  ``num_beams`` of the ``2 * num_beams`` candidates finish.
"""
import math

import pytest
import torch

from backbones.generation import DecodingConfig, beam_search
from tasks.caption.evaluate import DEFAULT_DECODING, cache_tag

PAD, EOS, A, B, C, D, Z = range(7)
VOCAB = 7
PROMPT = [Z, Z, Z, Z]  # four tokens, as [DEC] + 'a picture of '
P = len(PROMPT)

# log p(A), log p(B) at the first step; other tokens share what is left, evenly.
FIRST = {A: -0.6, B: -1.2}


class FixedScoreSteps:
    """Decoder steps whose next-token log-probabilities depend only on the generated prefix.

    ``tree`` maps a generated prefix (tuple of tokens after the prompt) to ``{token: log p}``;
    the rest of the probability mass is spread evenly over the other tokens; prefixes not
    in ``tree`` get a uniform distribution.
    """

    def __init__(self, tree: dict, rows: int):
        self.tree, self.rows, self.tokens = tree, rows, None

    def start(self, prompt_ids):
        """Log-probabilities after the prompt, one row per beam."""
        self.tokens = prompt_ids.repeat_interleave(self.rows, 0)
        return self.log_probs()

    def advance(self, tokens, parent_rows=None):
        """Log-probabilities after appending ``tokens`` to the parents' sequences."""
        previous = self.tokens if parent_rows is None else self.tokens[parent_rows]
        self.tokens = torch.cat([previous, tokens[:, None]], dim=1)
        return self.log_probs()

    def log_probs(self):
        """``[rows, VOCAB]`` log-probabilities of the next token."""
        rows = []
        for sequence in self.tokens.tolist():
            given = self.tree.get(tuple(sequence[P:]), {})
            rest = (1.0 - sum(math.exp(v) for v in given.values())) / (VOCAB - len(given))
            rows.append([given.get(token, math.log(rest)) for token in range(VOCAB)])
        return torch.tensor(rows)


def search(tree: dict, rule: str, max_length: int = 20) -> list:
    """Best hypothesis (generated tokens, eos kept) of 2-beam search on ``tree``."""
    config = DecodingConfig(eos_token_id=EOS, pad_token_id=PAD, num_beams=2,
                            max_length=max_length, min_length=0, length_normalization=rule)
    ids = beam_search(FixedScoreSteps(tree, rows=2), torch.tensor([PROMPT]), config)
    return ids[0, P:].tolist()


def blip_score(log_probs, eos=True):
    """transformers 4.15: summed log p over prompt + generated tokens, eos not counted."""
    return sum(log_probs) / (P + len(log_probs) - int(eos))


def hf_score(log_probs):
    """transformers 5.x: summed log p over generated tokens, eos counted."""
    return sum(log_probs) / len(log_probs)


def test_the_rules_rank_finished_hypotheses_differently():
    """X = 'A eos' (sum -2.0) against Y = 'B C eos' (sum -2.7), both finished by step 3."""
    x, y = [FIRST[A], -1.4], [FIRST[B], -0.5, -1.0]
    tree = {(): FIRST, (A,): {EOS: -1.4}, (B,): {C: -0.5}, (B, C): {EOS: -1.0}}
    assert blip_score(x) == pytest.approx(-2.0 / 5) and blip_score(y) == pytest.approx(-2.7 / 6)
    assert blip_score(x) > blip_score(y)
    assert hf_score(y) == pytest.approx(-2.7 / 3) and hf_score(x) == pytest.approx(-2.0 / 2)
    assert hf_score(y) > hf_score(x)
    assert search(tree, 'blip') == [A, EOS]
    assert search(tree, 'hf') == [B, C, EOS]


def test_at_max_length_blip_adds_running_beams_over_the_whole_length_without_eos():
    """max_length 6 (2 new tokens): 'B C' (sum -2.2) is cut by the length, 'A eos' (-2.0) ends.

    4.15: 'A eos' scores -2.0/5 at the last step; finalize adds 'B C' as -2.2/6, which wins.
    HF 5.x: both are among the top 2 candidates of the last step: -2.0/2 beats -2.2/2.
    """
    tree = {(): FIRST, (A,): {EOS: -1.4}, (B,): {C: -1.0}}
    assert blip_score([FIRST[B], -1.0], eos=False) > blip_score([FIRST[A], -1.4])
    assert hf_score([FIRST[A], -1.4]) > hf_score([FIRST[B], -1.0])
    assert search(tree, 'blip', max_length=6) == [B, C]  # no eos: the length cut it
    assert search(tree, 'hf', max_length=6) == [A, EOS]


def test_at_max_length_blip_considers_running_beams_ranked_below_num_beams():
    """The last step's top 2 candidates both end with eos: 'A eos' (-2.0), 'B eos' (-2.1).

    4.15 keeps the 2 best other candidates running, 'A C' (-2.3) first. ``is_done`` compares
    the best candidate ('A eos', -2.0) / 5 with the worst finished (-2.1/5): not done, so
    finalize adds the running beams: -2.3/6 beats -2.0/5 and -2.1/5. (The best *running*
    beam, -2.3/5, would have called the image done.) HF 5.x finishes the top 2: -2.0/2 wins.
    """
    tree = {(): FIRST, (A,): {EOS: -1.4, C: -1.7}, (B,): {EOS: -0.9}}
    assert blip_score([FIRST[A], -1.7], eos=False) > blip_score([FIRST[A], -1.4])
    assert search(tree, 'blip', max_length=6) == [A, C]
    assert search(tree, 'hf', max_length=6) == [A, EOS]


def test_at_max_length_blip_adds_no_running_beam_to_an_image_already_done():
    """max_length 7: at the last step 'B C eos' (-2.7) fills the second slot (-2.7/6).

    4.15's ``is_done``: worst finished (-2.7/6) >= best candidate (-2.7) / 6, so the image
    is done and finalize skips it, although 'B C D' (-2.75/7) would beat 'A eos' (-2.0/5).
    HF 5.x finishes the top 2 candidates: 'B C eos' (-2.7/3) beats 'B C D' and 'A eos'.
    """
    tree = {(): FIRST, (A,): {EOS: -1.4}, (B,): {C: -0.5}, (B, C): {EOS: -1.0, D: -1.05}}
    bcd = [FIRST[B], -0.5, -1.05]
    assert blip_score(bcd, eos=False) > blip_score([FIRST[A], -1.4])
    assert search(tree, 'blip', max_length=7) == [A, EOS]
    assert hf_score([FIRST[B], -0.5, -1.0]) > max(hf_score(bcd), hf_score([FIRST[A], -1.4]))
    assert search(tree, 'hf', max_length=7) == [B, C, EOS]


def test_blip_rule_is_the_default_and_part_of_the_caption_cache_tag():
    """Captions cached under another rule must not be reused."""
    assert DecodingConfig(eos_token_id=EOS, pad_token_id=PAD).length_normalization == 'blip'
    assert DEFAULT_DECODING['length_normalization'] == 'blip'
    assert cache_tag('ckpt', DEFAULT_DECODING, 'torch.float32') != \
        cache_tag('ckpt', dict(DEFAULT_DECODING, length_normalization='hf'), 'torch.float32')
    with pytest.raises(ValueError, match='length_normalization'):
        DecodingConfig(eos_token_id=EOS, pad_token_id=PAD, length_normalization='hf4')
