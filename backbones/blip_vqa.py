"""BLIP's VQA model: an image-grounded question encoder and an answer decoder.

The architecture and inference of official BLIP's ``models/blip_vqa.py``, batched:

* the ViT encodes the image; the MED text encoder reads the question (``[ENC]`` first,
  padded to the longest, cut at 35 tokens) with cross-attention to every image token;
* the answer decoder is a MED LM with its *own* weights (nothing shared with the encoder),
  cross-attending to the question states (hence 'text width' wide, not the ViT's);
* training: every answer of a question is decoded (``[DEC]`` first, ``[SEP]`` last) against
  that question's states under its padding mask; the per-answer loss is the label-smoothed
  LM loss summed over tokens, and the batch loss is ``sum(weight * loss) / questions``;
* ``rank_answers``: the decoder's first step from ``[DEC]`` gives each candidate's first-token
  probability; the ``k`` likeliest candidates are decoded whole and the one with the lowest
  (label-smoothed, as BLIP) summed loss wins;
* ``generate_answers``: beam search from ``[DEC]`` (3 beams, at most 10 tokens with
  ``[DEC]``) over question states with an all-ones cross-attention mask, as BLIP passes it.

Module names are official BLIP's (``visual_encoder``, ``text_encoder``,
``text_decoder.{bert,cls}``), so ``model_base_vqa_capfilt_large.pth`` loads key for key, as
do Hugging Face ``BlipForQuestionAnswering`` directories (``vision_model.*`` renamed).
"""
from dataclasses import replace
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from harness.core.registry import MODELS, TOKENIZERS

from .blip import build_med_config
from .blip_base import BlipBase
from .generation import DecodingConfig, generate_ids, repeat_rows
from .med import MedDecoder, MedTextModel, lm_loss

RANK_SCORES = ('blip', 'loglik')
CROSS_ATTENTION_MASKS = ('blip', 'question')
ANSWER_METHODS = ('rank', 'generate')

# Checkpoint parts a VQA model has no place for (a pre-training checkpoint holds them):
# the loader drops them with this reason instead of calling them unexpected.
_ITC = 'ITC head of pre-training: the VQA model has none'
_MOMENTUM = 'momentum copy of pre-training: the VQA model has none'
UNUSED_CHECKPOINT_MODULES = {
    'vision_proj': _ITC, 'text_proj': _ITC, 'temp': _ITC,
    'queue': 'ITC feature queue of pre-training: the VQA model has none',
    'itm_head': 'ITM head of pre-training: the VQA model has none',
    'visual_encoder_m': _MOMENTUM, 'text_encoder_m': _MOMENTUM,
    'vision_proj_m': _MOMENTUM, 'text_proj_m': _MOMENTUM,
}


@MODELS.register_module()
class BlipVQA(BlipBase):
    """BLIP fine-tuned for visual question answering (``harness.core.model_api.
    VisualQuestionAnswering``).

    Args:
        vision: config of the image encoder (BLIP's VQA ViT: ``drop_path_rate=0.1``, 480 px).
        tokenizer: config of the tokenizer (``dict(type='BlipTokenizer', vocab=...)``).
        text_arch: MED shape name (``'base'``, ``'tiny'``); ``text_overrides`` change fields
            of both the question encoder and the answer decoder.
        max_question_length: question token limit (35).
        label_smoothing: of the answer LM loss, in training and in ranking (0.1).
        data_preprocessor: mmengine data preprocessor config.
    """

    unused_checkpoint_modules = UNUSED_CHECKPOINT_MODULES

    def __init__(self,
                 vision: dict,
                 tokenizer: dict,
                 text_arch: str = 'base',
                 text_overrides: Optional[dict] = None,
                 max_question_length: int = 35,
                 label_smoothing: float = 0.1,
                 data_preprocessor: Optional[dict] = None):
        super().__init__(data_preprocessor)
        self.tokenizer = TOKENIZERS.build(tokenizer)
        self.visual_encoder = MODELS.build(vision)
        self.configured_image_size = vision.get('image_size')
        self.max_text_length = max_question_length
        self.label_smoothing = label_smoothing
        self.med_config = build_med_config(text_arch, len(self.tokenizer),
                                           self.visual_encoder.embed_dim,
                                           **(text_overrides or {}))
        self.text_encoder = MedTextModel(self.med_config)
        # The decoder cross-attends to question states (BLIP builds it from med_config.json,
        # whose encoder_width is BERT's hidden size whatever the ViT).
        self.text_decoder = MedDecoder(replace(self.med_config,
                                               encoder_width=self.med_config.hidden_size))

    # ------------------------------------------------------------------ encoders
    def encode_questions(self, image_embeds: torch.Tensor, questions: Sequence[str],
                         image_atts: Optional[torch.Tensor] = None
                         ) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(states [B, L, H], mask [B, L])`` of questions read with ``[ENC]`` first and
        cross-attention to ``image_embeds`` (``[B, N, W]``; a video's frames concatenated)."""
        tokens = self.tokenize(questions)
        input_ids = self.with_first_token(tokens['input_ids'], self.tokenizer.enc_token_id)
        states = self.text_encoder(input_ids, tokens['attention_mask'], mode='multimodal',
                                   image_embeds=image_embeds, image_atts=image_atts)
        return states, tokens['attention_mask']

    def answer_tokens(self, answers: Sequence[str]) -> Dict[str, torch.Tensor]:
        """Decoder inputs of ``answers`` (``[DEC]`` first, padded to the longest) and LM
        targets (padding ``-100``). Answers are not cut (BLIP's are not) short of the
        decoder's position table."""
        tokens = self.tokenizer(answers, self.med_config.max_position_embeddings,
                                device=self.device)
        input_ids = self.with_first_token(tokens['input_ids'], self.tokenizer.bos_token_id)
        return dict(input_ids=input_ids, attention_mask=tokens['attention_mask'],
                    labels=self.lm_targets(input_ids))

    def lm_targets(self, input_ids: torch.Tensor) -> torch.Tensor:
        """LM labels of answer ids: the ids, padding ``-100`` (as BLIP: by the pad id)."""
        return input_ids.masked_fill(input_ids == self.tokenizer.pad_token_id, -100)

    def answer_candidates(self, answer_list: Sequence[str]) -> Dict[str, torch.Tensor]:
        """The candidate answers tokenized once for :meth:`rank_answers` (``input_ids`` with
        ``[DEC]`` first, ``attention_mask``)."""
        tokens = self.answer_tokens(answer_list)
        return dict(input_ids=tokens['input_ids'], attention_mask=tokens['attention_mask'])

    def answer_loss(self, tokens: dict, question_atts: torch.Tensor, label_smoothing: float,
                    **question) -> torch.Tensor:
        """Per-answer summed LM loss of ``tokens`` (:meth:`answer_tokens`) decoded against one
        question per answer: ``question`` is its states (``image_embeds=``) or the decoder's
        cross-attention keys/values of them (``image_kv=``), masked by ``question_atts``."""
        logits = self.text_decoder(tokens['input_ids'], tokens['attention_mask'],
                                   image_atts=question_atts, **question)
        return lm_loss(logits, tokens['labels'], label_smoothing, reduction='none')

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def rank_answers(self, states: torch.Tensor, atts: torch.Tensor, candidates: dict,
                     k: int = 128, score: str = 'blip') -> torch.Tensor:
        """``[B]`` indices into the candidate list: BLIP's ``rank_answer`` for all questions.

        The first decoder step from ``[DEC]`` (cross-attention masked by the question mask)
        gives each candidate's first-token probability; the ``min(k, candidates)`` likeliest
        are decoded whole and scored by minus their summed LM loss, label-smoothed as in
        training (``score='blip'``, BLIP's) or not (``'loglik'``: the plain log-likelihood).
        """
        if score not in RANK_SCORES:
            raise ValueError(f'score must be one of {RANK_SCORES}, got {score!r}')
        ids = candidates['input_ids'].to(states.device)
        mask = candidates['attention_mask'].to(states.device)
        batch = states.shape[0]
        question_kv = self.text_decoder.bert.image_key_values(states)
        start = ids.new_full((batch, 1), self.tokenizer.bos_token_id)
        first_logits = self.text_decoder(start, torch.ones_like(start), image_kv=question_kv,
                                         image_atts=atts)[:, 0]
        first_probs = first_logits.float().softmax(dim=-1).index_select(1, ids[:, 1])
        k = min(k, ids.shape[0])
        top = first_probs.topk(k, dim=1).indices  # [B, k]
        chosen = top.flatten()
        tokens = dict(input_ids=ids[chosen], attention_mask=mask[chosen],
                      labels=self.lm_targets(ids[chosen]))
        tiled_kv = [(repeat_rows(key, k), repeat_rows(value, k)) for key, value in question_kv]
        smoothing = self.label_smoothing if score == 'blip' else 0.0
        scores = -self.answer_loss(tokens, repeat_rows(atts, k), smoothing,
                                   image_kv=tiled_kv).view(batch, k)
        return top.gather(1, scores.argmax(dim=1, keepdim=True)).squeeze(1)

    @torch.no_grad()
    def generate_answers(self, states: torch.Tensor, atts: torch.Tensor, num_beams: int = 3,
                         max_length: int = 10, min_length: int = 1,
                         cross_attention_mask: str = 'blip',
                         length_normalization: str = 'blip') -> List[str]:
        """Answers decoded from ``[DEC]`` by beam search (BLIP's settings by default).

        Lengths count ``[DEC]``. ``cross_attention_mask='blip'`` lets the decoder attend to
        every question position, padding included, as official BLIP (it passes an all-ones
        mask); ``'question'`` masks the padding. ``length_normalization`` as
        :class:`backbones.generation.DecodingConfig`.
        """
        if cross_attention_mask not in CROSS_ATTENTION_MASKS:
            raise ValueError(f'cross_attention_mask must be one of {CROSS_ATTENTION_MASKS}, '
                             f'got {cross_attention_mask!r}')
        tokenizer = self.tokenizer
        config = DecodingConfig(eos_token_id=tokenizer.sep_token_id,
                                pad_token_id=tokenizer.pad_token_id, method='beam',
                                num_beams=num_beams, max_length=max_length,
                                min_length=min_length, length_normalization=length_normalization)
        ids = generate_ids(self.text_decoder, states, torch.tensor([tokenizer.bos_token_id]),
                           config, image_atts=atts if cross_attention_mask == 'question' else None)
        return tokenizer.batch_decode(ids)

    @torch.no_grad()
    def answer(self, images: torch.Tensor, questions: Sequence[str], method: str = 'rank',
               answer_list: Optional[Sequence[str]] = None, **options) -> List[str]:
        """Answers to ``questions`` about ``images``: ranked from ``answer_list``
        (``options`` of :meth:`rank_answers`) or generated (of :meth:`generate_answers`)."""
        if method not in ANSWER_METHODS:
            raise ValueError(f'method must be one of {ANSWER_METHODS}, got {method!r}')
        states, atts = self.encode_questions(self.encode_image(images), questions)
        if method == 'generate':
            return self.generate_answers(states, atts, **options)
        if not answer_list:
            raise ValueError("method='rank' needs answer_list (the candidate answers, e.g. "
                             "BLIP's answer_list.json); or use method='generate'")
        best = self.rank_answers(states, atts, self.answer_candidates(answer_list), **options)
        return [answer_list[index] for index in best.tolist()]

    # ------------------------------------------------------------------ training
    def loss(self, images: torch.Tensor, data_samples: dict) -> Dict[str, torch.Tensor]:
        """``{'loss_vqa'}``: BLIP's weighted answer loss of a ``vqa_train_collate`` batch
        (``question``, flat ``answers``, their ``weights``, ``answer_counts`` per question)."""
        states, atts = self.encode_questions(self.encode_image(images), data_samples['question'])
        counts = torch.as_tensor(data_samples['answer_counts'], device=states.device)
        weights = torch.as_tensor(data_samples['weights'], device=states.device)
        per_answer = self.answer_loss(self.answer_tokens(data_samples['answers']),
                                      atts.repeat_interleave(counts, dim=0), self.label_smoothing,
                                      image_embeds=states.repeat_interleave(counts, dim=0))
        return {'loss_vqa': (weights * per_answer).sum() / images.shape[0]}

    def predict(self, images: torch.Tensor, data_samples: dict) -> List[dict]:
        """Generated answers (BLIP's decoding), one dict per question (with its
        ``question_id`` where the batch has them)."""
        answers = self.answer(images, data_samples['question'], method='generate')
        ids = data_samples.get('question_id', [None] * len(answers))
        return [dict(question_id=qid, answer=answer) for qid, answer in zip(ids, answers)]
