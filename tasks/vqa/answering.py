"""Answer every question of a dataset with a BLIP VQA model, as BLIP's ``train_vqa.py`` does.

``method='rank'`` (BLIP's VQAv2 protocol) picks from the dataset's answer list: the top
``k`` candidates by first-token probability, re-ranked by the decoder's loss on each
whole candidate. ``method='generate'`` decodes an answer by beam search (3 beams, at most
10 tokens). Answers go through :func:`tasks.batch_inference.infer_dataset`: sharded over
ranks, saved as they come, resumed after an interruption and reused for the same
checkpoint and settings.
"""
from typing import Callable, Optional, Sequence

import torch

from ..batch_inference import infer_dataset, settings_tag
from ..cache_keys import results_key
from ..datasets.device_decode import images_on_device

METHODS = ('rank', 'generate')
# BLIP's configs/vqa.yaml and models/blip_vqa.py.
DEFAULT_RANK = dict(k=128, score='blip')
DEFAULT_GENERATE = dict(num_beams=3, max_length=10, min_length=1, cross_attention_mask='blip',
                        length_normalization='blip')


def inference_settings(method: str, options: Optional[dict]) -> dict:
    """The full settings of ``method``: BLIP's defaults updated by ``options``."""
    if method not in METHODS:
        raise ValueError(f'VQA inference method must be one of {METHODS}, got {method!r}')
    defaults = DEFAULT_RANK if method == 'rank' else DEFAULT_GENERATE
    unknown = set(options or {}) - set(defaults)
    if unknown:
        raise ValueError(f'unknown {method!r} option(s) {sorted(unknown)}; the options are '
                         f'{sorted(defaults)}')
    return dict(defaults, **(options or {}))


def plain_ids(question_ids) -> list:
    """Question ids as plain Python values (collation turns integer ids into a tensor)."""
    return question_ids.tolist() if isinstance(question_ids, torch.Tensor) else list(question_ids)


def encode_images(model, batch: dict, device) -> torch.Tensor:
    """The image tokens ``[B, 1 + N, W]`` of a batch's ``'image'`` (a tensor, or encoded
    images decoded on ``device``)."""
    return model.encode_image(images_on_device(batch['image'], device))


def answer_dataset(model, dataset, *, method: str = 'rank', options: Optional[dict] = None,
                   answer_list: Optional[Sequence[str]] = None, device='cpu', work_dir=None,
                   cache_key=None, batch_size: int = 32, num_workers: int = 0,
                   save_every: int = 10,
                   encode: Callable[..., torch.Tensor] = encode_images) -> tuple[list, dict]:
    """Answer every question of ``dataset`` (items ``{'image', 'question', 'question_id'}``).

    Args:
        model: satisfies :class:`harness.core.model_api.VisualQuestionAnswering`.
        method: ``'rank'`` or ``'generate'``.
        options: ``rank``: ``k`` (128), ``score`` (``'blip'``: the decoder's label-smoothed
            loss, as BLIP; ``'loglik'``: the plain log-likelihood). ``generate``:
            ``num_beams``, ``max_length``, ``min_length`` (3, 10, 1; lengths count
            ``[DEC]``), ``cross_attention_mask`` (``'blip'``: the official all-ones mask
            over the question states; ``'question'``: the question's padding mask),
            ``length_normalization`` (``'blip'`` or ``'hf'``).
        answer_list: the candidates of ``rank``.
        encode: ``(model, batch, device) -> [B, L, W]`` visual tokens the questions attend
            to (default: :func:`encode_images`; video QA passes its frames' tokens).

    Returns:
        ``[{'question_id', 'answer'}]`` in dataset order and the rate (``questions/s``).
    """
    settings = inference_settings(method, options)
    cache_key = results_key(model, cache_key, work_dir)
    if method == 'rank':
        if not answer_list:
            raise ValueError('rank inference needs an answer list: give the dataset an '
                             'answer_list_file (BLIP: answer_list.json) or use '
                             "method='generate'")
        candidates = model.answer_candidates(list(answer_list))
        settings_key = dict(settings, method=method, answers=list(answer_list))
    else:
        settings_key = dict(settings, method=method)

    def answer_batch(batch: dict, indices: list) -> list:
        image_embeds = encode(model, batch, device)
        states, atts = model.encode_questions(image_embeds, list(batch['question']))
        if method == 'rank':
            chosen = model.rank_answers(states, atts, candidates, **settings).tolist()
            answers = [answer_list[i] for i in chosen]
        else:
            answers = model.generate_answers(states, atts, **settings)
        return [dict(question_id=qid, answer=answer)
                for qid, answer in zip(plain_ids(batch['question_id']), answers)]

    tag = settings_tag('answers', cache_key, settings_key)
    return infer_dataset(dataset, answer_batch, tag=tag, work_dir=work_dir,
                         batch_size=batch_size, num_workers=num_workers, save_every=save_every,
                         desc=f'VQA ({method})', unit='questions')
