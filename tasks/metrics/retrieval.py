"""Image–text retrieval recall from score matrices, as BLIP's ``itm_eval`` computes it.

An image's rank is the best (smallest) 0-based position of any of its ground-truth texts in
its row sorted by descending score; a text's rank is the position of its one image. R@k is
the percentage of queries with rank < k.

Ties: BLIP sorts with ``np.argsort(scores)[::-1]``, whose order among equal scores depends on
numpy's default (unstable, SIMD-dispatched) sort and so on the machine. BLIP's score matrices
are full of ties (every entry outside the ITM top-k is -100), so we fix the order: a
*stable* ascending argsort reversed, i.e. ``np.argsort(scores, kind='stable')[::-1]``.
Among equal scores the entry with the *higher* index ranks first. This is exactly BLIP's
result whenever the scores have no ties, and whenever numpy's default sort happens to be
stable on the input.
"""
from collections.abc import Sequence

import numpy as np

RECALL_AT = (1, 5, 10)


def _as_score_matrix(scores, name: str, shape: tuple[int, int]) -> np.ndarray:
    """Return scores as a 2-D numpy array of the expected shape, or raise naming the input."""
    if hasattr(scores, 'detach'):  # a torch tensor, possibly on an accelerator
        scores = scores.detach().cpu().numpy()
    matrix = np.asarray(scores)
    if matrix.shape != shape:
        raise ValueError(f'{name} has shape {matrix.shape}, expected {shape} '
                         '(scores_i2t: images × texts, scores_t2i: texts × images)')
    return matrix


def _descending_order(row: np.ndarray) -> np.ndarray:
    """Indices of ``row`` by descending score; ties: higher index first (see module doc)."""
    return np.argsort(row, kind='stable')[::-1]


def best_ranks(scores: np.ndarray, targets: Sequence[Sequence[int]]) -> np.ndarray:
    """For each row, the best 0-based rank among its target columns (row sorted descending)."""
    ranks = np.empty(len(targets), dtype=np.int64)
    for row_index, (row, row_targets) in enumerate(zip(scores, targets)):
        if len(row_targets) == 0:
            raise ValueError(f'query {row_index} has no ground-truth match; every image needs '
                             'at least one text and every text one image')
        position_of = np.empty(row.shape[0], dtype=np.int64)
        position_of[_descending_order(row)] = np.arange(row.shape[0])
        ranks[row_index] = position_of[np.asarray(row_targets)].min()
    return ranks


def _recalls(ranks: np.ndarray) -> list[float]:
    """Percentage of queries with rank < k, for each k in RECALL_AT."""
    return [100.0 * np.count_nonzero(ranks < k) / len(ranks) for k in RECALL_AT]


def retrieval_metrics(scores_i2t, scores_t2i, img2txt: Sequence[Sequence[int]],
                      txt2img: Sequence[int]) -> dict[str, float]:
    """Text and image retrieval recall in percent (0..100), as BLIP reports them.

    Args:
        scores_i2t: ``n_img × n_txt`` scores (higher = better match); array or tensor.
        scores_t2i: ``n_txt × n_img`` scores.
        img2txt: for each image, the indices of its ground-truth texts.
        txt2img: for each text, the index of its image.

    Returns:
        ``TR@1, TR@5, TR@10`` (image → text), ``IR@1, IR@5, IR@10`` (text → image),
        ``TR_mean``, ``IR_mean`` (means of the three recalls) and ``R_mean`` (their mean).
    """
    n_img, n_txt = len(img2txt), len(txt2img)
    scores_i2t = _as_score_matrix(scores_i2t, 'scores_i2t', (n_img, n_txt))
    scores_t2i = _as_score_matrix(scores_t2i, 'scores_t2i', (n_txt, n_img))
    text_recalls = _recalls(best_ranks(scores_i2t, img2txt))
    image_recalls = _recalls(best_ranks(scores_t2i, [[image] for image in txt2img]))
    metrics = {f'TR@{k}': recall for k, recall in zip(RECALL_AT, text_recalls)}
    metrics.update({f'IR@{k}': recall for k, recall in zip(RECALL_AT, image_recalls)})
    metrics['TR_mean'] = sum(text_recalls) / len(RECALL_AT)
    metrics['IR_mean'] = sum(image_recalls) / len(RECALL_AT)
    metrics['R_mean'] = (metrics['TR_mean'] + metrics['IR_mean']) / 2
    return metrics
