"""Text-video retrieval metrics as BLIP's ``eval_retrieval_video.itm_eval`` reports them.

R@1/5/10 in both directions (ranks and ties as :mod:`tasks.metrics.retrieval`) and the
median rank (1-based, lower is better): ``t2v_MdR`` is the paper's MdR; ``v2t_MdR`` is
reported alongside.
"""
from typing import Dict, Sequence

import numpy as np

from harness.core.task_result import PERCENT, RANK, Metric, metrics_in

from ..metrics.retrieval import RECALL_AT, best_ranks
from ..retrieval import RetrievalScores

DIRECTIONS = ('t2v', 'v2t')


def direction_ranks(scores: RetrievalScores, video2text: Sequence[Sequence[int]],
                    text2video: Sequence[int]) -> Dict[str, np.ndarray]:
    """0-based rank of each query's best ground truth: ``t2v`` per text, ``v2t`` per video."""
    return {'t2v': best_ranks(scores.t2i.numpy(), [[video] for video in text2video]),
            'v2t': best_ranks(scores.i2t.numpy(), video2text)}


def video_retrieval_metrics(ranks: Dict[str, np.ndarray]) -> Dict[str, Metric]:
    """``t2v_R@k``/``v2t_R@k`` (percent), their means and ``R_mean``, and both MdR (rank)."""
    recalls = {f'{direction}_R@{k}': 100.0 * np.count_nonzero(ranks[direction] < k)
               / len(ranks[direction]) for direction in DIRECTIONS for k in RECALL_AT}
    for direction in DIRECTIONS:
        recalls[f'{direction}_R_mean'] = sum(recalls[f'{direction}_R@{k}']
                                             for k in RECALL_AT) / len(RECALL_AT)
    recalls['R_mean'] = (recalls['t2v_R_mean'] + recalls['v2t_R_mean']) / 2
    median_ranks = {f'{direction}_MdR': float(np.median(ranks[direction] + 1))
                    for direction in DIRECTIONS}
    return {**metrics_in(recalls, PERCENT),
            **metrics_in(median_ranks, RANK, higher_is_better=False)}


def per_query_hits(ranks: Dict[str, np.ndarray]) -> Dict[str, Dict[str, float]]:
    """Per-query hits (0 or 100) of every recall: ``t2v`` keyed by text, ``v2t`` by video."""
    return {f'{direction}_R@{k}': {str(query): 100.0 * float(rank < k)
                                   for query, rank in enumerate(ranks[direction])}
            for direction in DIRECTIONS for k in RECALL_AT}
