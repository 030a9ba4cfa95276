"""Chance levels: what a uniformly random ranking scores, drawn as a board's baseline.

Only retrieval recalls have one that follows from the test-set size alone:

* ``IR@K`` (text -> image): each text has one matching image among ``N`` images, so a
  random ranking puts it in the top ``K`` with probability ``K / N``;
* ``TR@K`` (image -> text): an image with ``c`` matching texts among ``T`` texts is hit
  unless all ``K`` top places go to the ``T - c`` other texts:
  ``1 - C(T - c, K) / C(T, K)``.

Video retrieval recalls are the same with clips for images: ``t2v_R@K`` as ``IR@K`` and
``v2t_R@K`` as ``TR@K``, from the counts' ``videos``.

Caption and VQA metrics have no chance level that the counts determine; the means of
recalls (``TR_mean`` ...) get none either.
"""
import math
import re
from collections.abc import Iterable, Mapping

from harness.core.task_result import PERCENT
from harness.results import ResultRecord

RECALL = re.compile(r'(TR|IR|v2t_R|t2v_R)@(\d+)')


def recall_chance(metric: str, images: int, texts: int) -> float | None:
    """Chance level of a recall metric as a fraction (None for other metrics).

    Captions per image are ``texts / images``: exact when every image has the same number
    of texts (Flickr30k, ToyWorld); otherwise the rounded average (COCO Karpathy test:
    25,010 / 5,000 -> 5), which is close but not exact.
    """
    match = RECALL.fullmatch(metric)
    if match is None or images < 1 or texts < 1:
        return None
    direction, k = match.group(1), int(match.group(2))
    if direction in ('IR', 't2v_R'):
        return min(1.0, k / images)
    per_image = max(1, round(texts / images))
    return 1.0 - math.comb(texts - per_image, k) / math.comb(texts, k)


def chance_level(metric: str, records: Iterable[ResultRecord], unit: str) -> float | None:
    """Chance level of ``metric`` in its unit (only ``%`` is supported), from the
    ``extra['counts']`` (``images``, ``texts``) of the records holding it; None when the
    metric has none, the unit is not ``%`` or the records evaluated different test sets."""
    counts = {_images_texts(record.extra.get('counts') or {}) for record in records}
    if unit != PERCENT or len(counts) != 1 or None in counts:
        return None
    fraction = recall_chance(metric, *counts.pop())
    return None if fraction is None else 100.0 * fraction


def _images_texts(counts: Mapping[str, int]) -> tuple[int, int] | None:
    """``(images or videos, texts)`` of an evaluation's counts, or None when one is missing."""
    visuals = counts.get('images', counts.get('videos'))
    if visuals is not None and 'texts' in counts:
        return int(visuals), int(counts['texts'])
    return None
