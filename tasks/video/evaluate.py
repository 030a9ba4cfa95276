"""Zero-shot text-video retrieval by BLIP's ``eval_retrieval_video.py``, as a task plugin.

The protocol is the image one (:mod:`tasks.retrieval`) with clips for images:

1. every sampled frame is encoded; a clip's ITC feature is the mean of its frames'
   projected (unnormalised) features, normalised afterwards; its ITM input is all its
   frames' tokens concatenated, ``[1, T * (1 + N), width]``;
2. each clip is paired with its top-k texts by ITC similarity and each text with its
   top-k clips (k = 128 for MSRVTT); a pair scores ``ITM match logit (index 1) + sim``,
   every other entry -100;
3. text→video R@1/5/10 and median rank are the headline, video→text alongside
   (:mod:`.metrics`).

Sharding, caching, resuming and progress lines are the image machinery's. Clips are
surveyed first (:mod:`.clips`); the cache key covers the clips, frames per clip, sampling
rule and frame size, so an evaluation repeated on the same clips with the same model
neither opens nor decodes a clip.
"""
from pathlib import Path
from typing import Optional, Union

import torch

from harness.core.registry import TASKS
from harness.core.task_result import TaskResult

from ..retrieval.evaluate import scores_at_precision
from .clips import survey_clips, without_bad_clips
from .metrics import direction_ranks, per_query_hits, video_retrieval_metrics


@TASKS.register_module(name='video_retrieval')
def evaluate_video_retrieval(model, dataset, *, k: int = 128, batch_size: int = 64,
                             itm_batch_size: int = 256,
                             device: Union[str, torch.device] = 'cpu',
                             work_dir: Optional[Union[str, Path]] = None,
                             cache_key: Optional[str] = None, num_workers: int = 0,
                             max_text_length: int = 35, block_size: int = 64,
                             autocast_dtype: Optional[str] = None,
                             weights_dtype: Optional[str] = None, itm_packing: bool = False,
                             compile_layers: Union[bool, dict] = False) -> TaskResult:
    """BLIP's zero-shot text-video retrieval on a clip set, as the ``'video_retrieval'`` task.

    Args:
        model: a :class:`harness.core.model_api.VisionLanguageModel`.
        dataset: a :class:`tasks.datasets.VideoRetrievalDataset` (or one with its surface).
        k: ITM re-ranking depth (BLIP, MSRVTT: 128), capped at the candidates.
        batch_size: clips (texts) per feature-extraction batch.
        itm_batch_size: texts per ITM forward pass (all on one clip).
        device: where the model runs.
        work_dir: cache folder root (clip survey, features, re-ranked blocks, scores); None
            caches nothing.
        cache_key: the model's identity in the cache; default: a hash of its weights.
        num_workers: DataLoader workers that open and decode the clips.
        max_text_length: text token limit (35).
        block_size: clips per re-ranking block (the unit of sharding and resuming).
        autocast_dtype: ``'bfloat16'``/``'float16'`` to run under autocast, None for the
            model's own precision.
        weights_dtype: ``'bfloat16'`` to run a copy of the model cast to it (faster than
            autocast on GPUs; :func:`tasks.retrieval.evaluate.scores_at_precision`).
        itm_packing: fill each ITM pass with the texts of several clips, at one shape.
        compile_layers: ``torch.compile`` the layers for the evaluation (True or options).
            Both as the image task's (:func:`tasks.retrieval.compute_retrieval_scores`):
            scores equal up to float rounding, cached apart.

    Returns:
        A :class:`TaskResult`: ``t2v_R@1/5/10``, ``v2t_R@1/5/10``, their means and
        ``R_mean`` (percent), ``t2v_MdR``/``v2t_MdR`` (rank, lower is better); per-query
        hits; ``videos/s`` and ``ITM pairs/s per process`` (empty when cached); counts of
        videos, texts, frames per video, short clips (frames repeated) and skipped clips.
    """
    survey = survey_clips(dataset, work_dir, num_workers)
    clips = without_bad_clips(dataset, survey, dataset.select_clips)
    scores = scores_at_precision(
        model, clips, autocast_dtype, weights_dtype, k=k, batch_size=batch_size,
        itm_batch_size=itm_batch_size, device=device, work_dir=work_dir, cache_key=cache_key,
        num_workers=num_workers, max_text_length=max_text_length, block_size=block_size,
        itm_packing=itm_packing, compile_layers=compile_layers)
    ranks = direction_ranks(scores, clips.img2txt, clips.txt2img)
    return TaskResult(
        metrics=video_retrieval_metrics(ranks), per_sample=per_query_hits(ranks),
        throughput=dict(scores.throughput),
        counts={'videos': len(clips), 'texts': len(clips.texts),
                'frames_per_video': clips.num_frames,
                'short_clips': survey.short_clips(clips.num_frames),
                'skipped_clips': len(survey.bad_files)})
