"""Caption decoding for BLIP: greedy, beam search and nucleus sampling on a cached MED decoder.

We own the decoding loop (generation drifting with transformers versions was the top
complaint against the official code), but keep the semantics of Hugging Face's
``generate`` exactly as official BLIP (transformers 4.15) and ``BlipForConditionalGeneration``
(current transformers) call it; the two differ only in beam search's length normalization:

* **Lengths count every decoder token**, ``[DEC]`` and the prompt included (BLIP passes
  ``max_length``/``min_length`` straight to HF ``generate``, which counts the whole
  sequence): a caption has at most ``max_length`` tokens in all, and ``[SEP]`` (eos) is
  forbidden while the sequence is shorter than ``min_length``. With the prompt
  ``'a picture of '`` (4 tokens with ``[DEC]``), ``max_length=20`` leaves 16 new tokens.
* **Scores** are processed as HF's ``RepetitionPenaltyLogitsProcessor`` (prompt tokens
  included; divide positive / multiply negative scores) then ``MinLengthLogitsProcessor``;
  on log-probabilities in beam search, on logits in greedy decoding and sampling.
* **Beam search** is HF's: keep ``2 * num_beams`` candidates per image, length penalty
  1.0, HF's default ``early_stopping=False`` stopping heuristic. How finished hypotheses
  are ranked (``length_normalization``) follows the transformers version:

  - ``'blip'`` (default): transformers 4.15, which BLIP pinned and its paper's numbers
    come from (``BeamSearchScorer.process/finalize``, ``BeamHypotheses.add/is_done``).
    A hypothesis ending in eos scores ``sum log p / (prompt + generated tokens)``, eos
    not counted; an image is done once ``num_beams`` hypotheses finished and the best of
    this step's ``2 * num_beams`` candidates (eos ones included), divided by the same
    length, is no better than the worst of them; at ``max_length`` the ``num_beams``
    running beams of an image not done join, no eos, divided by ``max_length``.
  - ``'hf'``: current transformers (5.x, which ``BlipForConditionalGeneration`` parity
    is tested against): ``sum log p / generated tokens``, eos counted, prompt not; the
    stopping test divides the best running beam by the same length; at ``max_length``
    the top ``num_beams`` candidates finish.
* **Nucleus sampling** applies top-k (50, HF's default that BLIP's sampling inherited)
  then top-p with one token always kept, then samples from the softmax.

Cross-attention keys/values are projected once per image and repeated per beam;
self-attention keys/values of earlier tokens are cached and follow each beam's parent.
Finished sequences are padded with the pad id. ``cuda_graphs=True`` runs the same loop on
fixed-size buffers whose every step replays one CUDA graph
(:mod:`backbones.static_decoding`): 3.4x the captions/s at batch 64 on an H200, the same
captions in fp32 (tested on the CPU and CUDA), and up to rounding in bf16.
"""
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F

from .static_decoding import StaticDecoderSteps

try:  # Triton ships with torch's CUDA builds; without it torch.topk serves.
    from . import row_topk
except ImportError:
    row_topk = None

METHODS = ('beam', 'greedy', 'nucleus')
# Repetition penalty of BLIP's ``generate`` per method (nucleus sampling hard-codes 1.1).
BLIP_REPETITION_PENALTY = {'beam': 1.0, 'greedy': 1.0, 'nucleus': 1.1}
# The "minus infinity" HF's beam search adds to scores of excluded candidates.
EXCLUDED = -1.0e9
# How beam search normalizes finished hypotheses' scores by length (module docstring).
LENGTH_NORMALIZATIONS = ('blip', 'hf')


@dataclass(frozen=True)
class DecodingConfig:
    """How to decode token ids (defaults: BLIP's captioning settings).

    Args:
        eos_token_id: id that ends a sequence (BLIP: ``[SEP]``).
        pad_token_id: id written after a sequence ended.
        method: ``'beam'`` (``num_beams=1`` is greedy, as in HF), ``'greedy'`` or
            ``'nucleus'``.
        num_beams: beams per image for ``'beam'``.
        max_length: most tokens per sequence, prompt included.
        min_length: eos is banned while the sequence (prompt included) is shorter.
        top_p: nucleus mass for ``'nucleus'``.
        top_k: candidates kept before top-p for ``'nucleus'`` (0 disables).
        repetition_penalty: HF-style penalty on tokens already in the sequence (1.0: none).
        length_normalization: how beam search ranks finished hypotheses: ``'blip'``
            (transformers 4.15, BLIP's protocol) or ``'hf'`` (current transformers); see
            the module docstring.
    """

    eos_token_id: int
    pad_token_id: int
    method: str = 'beam'
    num_beams: int = 3
    max_length: int = 20
    min_length: int = 5
    top_p: float = 0.9
    top_k: int = 50
    repetition_penalty: float = 1.0
    length_normalization: str = 'blip'

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f'decoding method must be one of {METHODS}, got {self.method!r}')
        if self.num_beams < 1:
            raise ValueError(f'num_beams must be >= 1, got {self.num_beams}')
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f'top_p must be in (0, 1], got {self.top_p}')
        if self.top_k < 0:
            raise ValueError(f'top_k must be >= 0 (0 disables it), got {self.top_k}')
        if self.repetition_penalty <= 0:
            raise ValueError(f'repetition_penalty must be > 0, got {self.repetition_penalty}')
        if self.length_normalization not in LENGTH_NORMALIZATIONS:
            raise ValueError(f'length_normalization must be one of {LENGTH_NORMALIZATIONS}, '
                             f'got {self.length_normalization!r}')

    @property
    def uses_beams(self) -> bool:
        """Whether this is beam search proper (HF runs ``num_beams=1`` as greedy)."""
        return self.method == 'beam' and self.num_beams > 1


class CachedDecoderSteps:
    """Next-token logits of a MED decoder, one row per hypothesis, with cached keys/values.

    Cross-attention keys/values are projected once per image (``image_key_values``) and
    repeated for the image's ``rows_per_image`` hypotheses (beams); self-attention keys
    and values of earlier tokens are cached, and reordered when beams change parents.

    Args:
        decoder: a :class:`backbones.med.MedDecoder`.
        image_embeds: ``[B, N, width]`` states to cross-attend to (image tokens, or
            question states for VQA's answer decoder).
        image_atts: optional ``[B, N]`` mask of ``image_embeds``.
        rows_per_image: hypotheses decoded per image.
    """

    def __init__(self, decoder, image_embeds: torch.Tensor,
                 image_atts: Optional[torch.Tensor] = None, rows_per_image: int = 1):
        self.decoder = decoder
        self.rows_per_image = rows_per_image
        self.image_kv = decoder.bert.image_key_values(image_embeds)
        self.image_atts = image_atts
        self.self_kv = None
        self.length = 0

    def start(self, prompt_ids: torch.Tensor) -> torch.Tensor:
        """Run the ``[B, P]`` prompt once per image; ``[B * rows_per_image, V]`` next logits."""
        logits, self_kv = self.decoder(prompt_ids, torch.ones_like(prompt_ids),
                                       image_kv=self.image_kv, image_atts=self.image_atts,
                                       return_self_kv=True)
        repeat = self.rows_per_image
        self.self_kv = [(repeat_rows(k, repeat), repeat_rows(v, repeat)) for k, v in self_kv]
        self.image_kv = [(repeat_rows(k, repeat), repeat_rows(v, repeat))
                         for k, v in self.image_kv]
        if self.image_atts is not None:
            self.image_atts = repeat_rows(self.image_atts, repeat)
        self.length = prompt_ids.shape[1]
        return repeat_rows(logits[:, -1], repeat)

    def advance(self, tokens: torch.Tensor, parent_rows: Optional[torch.Tensor] = None):
        """Append ``tokens[i]`` to the hypothesis of row ``parent_rows[i]`` (default: row ``i``).

        Returns the ``[rows, V]`` logits of the token after.
        """
        if parent_rows is not None:
            self.self_kv = [(k.index_select(0, parent_rows), v.index_select(0, parent_rows))
                            for k, v in self.self_kv]
        self.length += 1
        mask = tokens.new_ones(tokens.shape[0], self.length)
        logits, self.self_kv = self.decoder(tokens[:, None], mask, image_kv=self.image_kv,
                                            image_atts=self.image_atts,
                                            past_self_kv=self.self_kv, return_self_kv=True)
        return logits[:, -1]


def repeat_rows(tensor: torch.Tensor, times: int) -> torch.Tensor:
    """Each row of ``tensor`` repeated ``times`` times consecutively
    (``[B, ...] -> [B*times, ...]``)."""
    return tensor if times == 1 else tensor.repeat_interleave(times, dim=0)


def penalize_repeats(scores: torch.Tensor, tokens: torch.Tensor, penalty: float) -> torch.Tensor:
    """HF's repetition penalty: scores of seen ``tokens`` shrink (``/p`` if > 0, else ``*p``)."""
    seen = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, tokens, True)
    penalized = torch.where(scores < 0, scores * penalty, scores / penalty)
    return torch.where(seen, penalized, scores)


def adjust_scores(scores: torch.Tensor, tokens: torch.Tensor, config: DecodingConfig):
    """Apply the repetition penalty and the min-length eos ban to ``[rows, V]`` scores."""
    if config.repetition_penalty != 1.0:
        scores = penalize_repeats(scores, tokens, config.repetition_penalty)
    if tokens.shape[1] < config.min_length:
        scores = scores.clone()  # a column fill: no index tensor copied to the device
        scores[:, config.eos_token_id] = float('-inf')
    return scores


def keep_top_k(scores: torch.Tensor, top_k: int) -> torch.Tensor:
    """Set every score below the ``top_k``-th largest of its row to ``-inf``."""
    kth_best = scores.topk(min(top_k, scores.shape[-1]), dim=-1).values[:, -1:]
    return scores.masked_fill(scores < kth_best, float('-inf'))


def keep_top_p(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filter: keep the most likely tokens whose probabilities sum to ``>= top_p``.

    A token is dropped when the total probability of tokens no more likely than it is
    ``<= 1 - top_p``; the most likely token is always kept (HF's ``TopPLogitsWarper``).
    """
    ascending, order = scores.sort(dim=-1)
    mass_up_to = ascending.softmax(dim=-1).cumsum(dim=-1)
    drop_sorted = mass_up_to <= 1 - top_p
    drop_sorted[:, -1] = False
    drop = drop_sorted.scatter(1, order, drop_sorted)
    return scores.masked_fill(drop, float('-inf'))


def next_token_greedy_or_sampled(scores: torch.Tensor, config: DecodingConfig,
                                 generator: Optional[torch.Generator]) -> torch.Tensor:
    """The argmax token per row, or one sampled from the top-k/top-p filtered softmax."""
    if config.method != 'nucleus':
        return scores.argmax(dim=-1)
    if config.top_k:
        scores = keep_top_k(scores, config.top_k)
    if config.top_p < 1.0:
        scores = keep_top_p(scores, config.top_p)
    return torch.multinomial(scores.softmax(dim=-1), 1, generator=generator).squeeze(1)


def decode_one_hypothesis(steps: CachedDecoderSteps, prompt_ids: torch.Tensor,
                          config: DecodingConfig,
                          generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Greedy decoding or nucleus sampling (one hypothesis per image); ``[B, L]`` ids.

    Rows that emitted eos get the pad id until every row ended or ``max_length`` is hit.
    """
    tokens = prompt_ids
    unfinished = torch.ones(prompt_ids.shape[0], dtype=torch.bool, device=prompt_ids.device)
    logits = steps.start(prompt_ids)
    while True:
        scores = adjust_scores(logits.float(), tokens, config)
        next_tokens = next_token_greedy_or_sampled(scores, config, generator)
        next_tokens = torch.where(unfinished, next_tokens, config.pad_token_id)
        tokens = torch.cat([tokens, next_tokens[:, None]], dim=1)
        unfinished &= next_tokens != config.eos_token_id
        if tokens.shape[1] >= config.max_length or not unfinished.any():
            return tokens
        logits = steps.advance(next_tokens)


class FinishedHypotheses:
    """Each image's ``num_beams`` best finished hypotheses (HF's ``BeamHypotheses``, batched).

    Args:
        batch, beams: images and hypotheses kept per image.
        max_length: longest sequence (stored padded to it with ``pad``).
    """

    def __init__(self, batch: int, beams: int, max_length: int, pad: int, device):
        self.beams, self.max_length, self.pad = beams, max_length, pad
        self.sequences = torch.full((batch, beams, max_length), pad, dtype=torch.long,
                                    device=device)
        self.scores = torch.full((batch, beams), EXCLUDED, device=device)
        self.lengths = torch.zeros((batch, beams), dtype=torch.long, device=device)
        self.filled = torch.zeros((batch, beams), dtype=torch.bool, device=device)

    def add(self, sequences: torch.Tensor, scores: torch.Tensor, offered: torch.Tensor):
        """Keep the best ``beams`` of the kept and the offered ``[B, k, L]`` ``sequences``.

        ``scores`` are ``[B, k]`` length-normalized; entries where ``offered`` is False are
        ignored.
        """
        length = sequences.shape[2]
        scores = torch.cat([self.scores, scores + (~offered).float() * EXCLUDED], dim=1)
        best = scores.topk(self.beams, dim=1).indices
        padded = F.pad(sequences, (0, self.max_length - length), value=self.pad)
        self.sequences = take_beams(torch.cat([self.sequences, padded], dim=1), best)
        self.scores = scores.gather(1, best)
        self.lengths = torch.cat([self.lengths, torch.full_like(offered, length, dtype=torch.long)],
                                 dim=1).gather(1, best)
        self.filled = torch.cat([self.filled, offered], dim=1).gather(1, best)

    def can_improve(self, best_possible: torch.Tensor) -> torch.Tensor:
        """``[B, 1]``: fewer than ``beams`` finished, or ``best_possible`` beats the worst."""
        worst = torch.where(self.filled, self.scores.min(dim=1, keepdim=True).values, EXCLUDED)
        return (best_possible > worst).any(dim=1, keepdim=True)

    def best(self) -> torch.Tensor:
        """``[B, L]`` ids of each image's best hypothesis, cut to the longest of them."""
        return self.sequences[:, 0, :int(self.lengths[:, 0].max())]


def beam_search(steps: CachedDecoderSteps, prompt_ids: torch.Tensor,
                config: DecodingConfig) -> torch.Tensor:
    """HF-semantics beam search; ``[B, L]`` ids of each image's best finished hypothesis.

    ``steps`` must hold ``num_beams`` rows per image. Per step, the ``2 * num_beams`` best
    continuations of an image's beams are candidates; the best ``num_beams`` not ending
    keep running; those ending with eos among the top ``num_beams`` join the image's
    finished hypotheses, scored by summed log-probability over a length that
    ``config.length_normalization`` defines (module docstring), which also sets what
    happens at ``max_length``. An image stops improving once all ``num_beams`` finished slots are
    filled and its best candidate (``'blip'``) or running beam (``'hf'``), scored at its
    length, cannot beat the worst finished one.
    """
    batch, prompt_len = prompt_ids.shape
    beams, max_length = config.num_beams, config.max_length
    blip = config.length_normalization == 'blip'
    device = prompt_ids.device
    candidates = 2 * beams
    candidate_in_top_beams = torch.arange(candidates, device=device) < beams
    first_row_of_image = torch.arange(batch, device=device)[:, None] * beams

    running = prompt_ids[:, None].expand(batch, beams, prompt_len)
    # Only beam 0 may expand at the first step (all beams start identical).
    running_scores = torch.full((batch, beams), EXCLUDED, device=device)
    running_scores[:, 0] = 0.0
    finished = FinishedHypotheses(batch, beams, max_length, config.pad_token_id, device)
    improvable = torch.ones((batch, 1), dtype=torch.bool, device=device)

    logits = steps.start(prompt_ids)
    while True:
        length = running.shape[2]
        at_max_length = length + 1 >= max_length
        log_probs = adjust_scores(F.log_softmax(logits.float(), dim=-1),
                                  running.reshape(batch * beams, length), config)
        vocab = log_probs.shape[-1]
        totals = log_probs.view(batch, beams, vocab) + running_scores[:, :, None]
        cand_scores, cand_index = top_candidates(totals.view(batch, beams * vocab), candidates)
        cand_beam, cand_token = cand_index // vocab, cand_index % vocab
        cand_seqs = torch.cat([take_beams(running, cand_beam), cand_token[:, :, None]], dim=2)
        # 4.15 keeps beams running into max_length (finalize adds them); today's HF ends them.
        cand_ends = (cand_token == config.eos_token_id) | (at_max_length and not blip)

        alive_scores = cand_scores + cand_ends.float() * EXCLUDED
        keep = alive_scores.topk(beams, dim=1).indices
        running = take_beams(cand_seqs, keep)
        running_scores = alive_scores.gather(1, keep)
        parent_rows = (cand_beam.gather(1, keep) + first_row_of_image).flatten()

        # 4.15: prompt + generated tokens, eos excluded; today's HF: generated, eos included.
        finished_length = length if blip else length + 1 - prompt_len
        finished.add(cand_seqs, cand_scores / float(finished_length),
                     cand_ends & candidate_in_top_beams & improvable)
        if blip:  # 4.15's is_done: the best candidate, eos or not, at the current length
            improvable &= finished.can_improve(cand_scores[:, :1] / float(length))
        else:
            improvable &= finished.can_improve(running_scores[:, :1] / float(finished_length))
        if blip and at_max_length:  # 4.15's finalize: running beams of images not done
            finished.add(running, running_scores / float(max_length),
                         improvable.expand(batch, beams))
        if at_max_length or not bool(improvable.any()):  # one device sync per step
            return finished.best()
        logits = steps.advance(running[:, :, -1].flatten(), parent_rows)


def top_candidates(scores: torch.Tensor, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``scores.topk(k, dim=1)``: by the Triton kernel of :mod:`backbones.row_topk` where it
    serves (the same values; among equal values the lower index first)."""
    if row_topk is not None and row_topk.serves(scores, k):
        return row_topk.row_topk(scores, k)
    return scores.topk(k, dim=1)


def take_beams(sequences: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``sequences[b, index[b, j]]`` for ``[B, beams, L]`` sequences and ``[B, k]`` index."""
    return sequences.gather(1, index[:, :, None].expand(-1, -1, sequences.shape[2]))


@torch.no_grad()
def generate_ids(decoder, image_embeds: torch.Tensor, prompt_ids: torch.Tensor,
                 config: DecodingConfig, image_atts: Optional[torch.Tensor] = None,
                 generator: Optional[torch.Generator] = None,
                 cuda_graphs: bool = False) -> torch.Tensor:
    """Decode token ids from a MED decoder grounded on ``image_embeds``.

    Args:
        decoder: a :class:`backbones.med.MedDecoder`.
        image_embeds: ``[B, N, width]`` states to cross-attend to (image tokens; question
            states for VQA's answer decoder).
        prompt_ids: ``[B, P]`` or ``[P]`` first tokens (``[DEC]`` + prompt, no ``[SEP]``),
            the same length for every image.
        config: decoding method and lengths (see :class:`DecodingConfig`).
        image_atts: optional ``[B, N]`` mask of ``image_embeds``.
        generator: random generator for nucleus sampling (on the decoding device).
        cuda_graphs: decode on fixed-size buffers
            (:class:`backbones.static_decoding.StaticDecoderSteps`), each step replayed as
            one CUDA graph on CUDA (run eagerly elsewhere); eval mode only. The logits
            equal the cached decoder's up to float rounding.

    Returns:
        ``[B, L]`` ids, prompt included, eos kept, padded with ``pad_token_id``.
    """
    if prompt_ids.dim() == 1:
        prompt_ids = prompt_ids.expand(image_embeds.shape[0], -1)
    prompt_ids = prompt_ids.to(image_embeds.device)
    if prompt_ids.shape[1] >= config.max_length:
        raise ValueError(f'the prompt has {prompt_ids.shape[1]} tokens but max_length is '
                         f'{config.max_length} (it counts the prompt); raise max_length')
    rows_per_image = config.num_beams if config.uses_beams else 1
    if cuda_graphs:
        steps = StaticDecoderSteps(decoder, image_embeds, image_atts, rows_per_image,
                                   max_length=config.max_length)
    else:
        steps = CachedDecoderSteps(decoder, image_embeds, image_atts, rows_per_image)
    if config.uses_beams:
        return beam_search(steps, prompt_ids, config)
    return decode_one_hypothesis(steps, prompt_ids, config, generator)


def caption_prompt_ids(model, device=None) -> torch.Tensor:
    """``[P]`` ids of ``[DEC]`` + the model's prompt, without the trailing ``[SEP]`` (as BLIP)."""
    ids = model.tokenizer([model.prompt], 512, device=device)['input_ids'][0, :-1].clone()
    ids[0] = model.tokenizer.bos_token_id
    return ids


@torch.no_grad()
def generate_captions(model, images: torch.Tensor, method: str = 'beam', num_beams: int = 3,
                      max_length: int = 20, min_length: int = 5, top_p: float = 0.9,
                      top_k: int = 50, repetition_penalty: Optional[float] = None,
                      length_normalization: str = 'blip',
                      generator: Optional[torch.Generator] = None,
                      cuda_graphs: bool = False) -> List[str]:
    """Captions of ``images`` by a BLIP model, with BLIP's decoding defaults.

    Args:
        model: a :class:`backbones.blip.Blip` with a text decoder.
        images: ``[B, 3, H, W]`` pre-processed images.
        method: ``'beam'``, ``'greedy'`` or ``'nucleus'`` (see :class:`DecodingConfig`).
        num_beams, max_length, min_length, top_p, top_k: as :class:`DecodingConfig`;
            lengths count ``[DEC]`` and the prompt, as BLIP's.
        repetition_penalty: ``None`` takes BLIP's per-method value (1.0 beam/greedy,
            1.1 nucleus).
        length_normalization: ``'blip'`` (transformers 4.15, BLIP's protocol) or ``'hf'``
            (current transformers), for beam search (see :class:`DecodingConfig`).
        generator: random generator for nucleus sampling (on the images' device).
        cuda_graphs: replay each decoding step as a CUDA graph (see :func:`generate_ids`).

    Returns:
        One caption per image, the prompt stripped (BLIP: ``text[len(prompt):]``).
    """
    if repetition_penalty is None:
        repetition_penalty = BLIP_REPETITION_PENALTY.get(method, 1.0)
    tokenizer = model.tokenizer
    config = DecodingConfig(eos_token_id=tokenizer.sep_token_id,
                            pad_token_id=tokenizer.pad_token_id, method=method,
                            num_beams=num_beams, max_length=max_length, min_length=min_length,
                            top_p=top_p, top_k=top_k, repetition_penalty=repetition_penalty,
                            length_normalization=length_normalization)
    image_embeds = model.encode_image(images)
    ids = generate_ids(model.text_decoder, image_embeds, caption_prompt_ids(model, images.device),
                       config, generator=generator, cuda_graphs=cuda_graphs)
    return [text[len(model.prompt):] for text in tokenizer.batch_decode(ids)]
