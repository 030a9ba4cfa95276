"""Chance levels: what a trivial model scores, drawn as a board's baseline.

Retrieval recalls have one that follows from the test-set size alone (a uniformly random
ranking):

* ``IR@K`` (text -> image): each text has one matching image among ``N`` images, so a
  random ranking puts it in the top ``K`` with probability ``K / N``;
* ``TR@K`` (image -> text): an image with ``c`` matching texts among ``T`` texts is hit
  unless all ``K`` top places go to the ``T - c`` other texts:
  ``1 - C(T - c, K) / C(T, K)``.

Video retrieval recalls are the same with clips for images: ``t2v_R@K`` as ``IR@K`` and
``v2t_R@K`` as ``TR@K``, from the counts' ``videos``.

Caption metrics have no chance level; the means of recalls (``TR_mean`` ...) get none
either. A task may instead measure one on its own samples and record it
(``extra['baselines']``, described by ``extra['baseline_basis']``): VQA records the
accuracy of answering every question with the most frequent answer.
"""
import math
import re
from collections.abc import Iterable, Mapping

from harness.core.task_result import PERCENT
from harness.results import ResultRecord

RECALL = re.compile(r'(TR|IR|v2t_R|t2v_R)@(\d+)')
RANDOM_RANKING = 'a random ranking, from the test-set size'


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
    """Chance level of ``metric`` in its unit (see :func:`chance_and_basis`), or None."""
    return chance_and_basis(metric, records, unit)[0]


def chance_and_basis(metric: str, records: Iterable[ResultRecord], unit: str
                     ) -> tuple[float | None, str]:
    """Chance level of ``metric`` in its unit (only ``%`` is supported) and what it is: a
    recall's from the ``extra['counts']`` (``images``, ``texts``) of the records holding it,
    else the level the records measured themselves (:func:`recorded_baseline`);
    ``(None, '')`` when the metric has none, the unit is not ``%`` or the records evaluated
    different test sets."""
    records = list(records)
    counts = {_images_texts(record.extra.get('counts') or {}) for record in records}
    if unit != PERCENT or len(counts) != 1:
        return None, ''
    fraction = recall_chance(metric, *counts.pop()) if None not in counts else None
    if fraction is not None:
        return 100.0 * fraction, RANDOM_RANKING
    return recorded_baseline(metric, records)


def recorded_baseline(metric: str, records: Iterable[ResultRecord]
                      ) -> tuple[float | None, str]:
    """The trivial-answerer level of ``metric`` the records hold (``extra['baselines']``)
    and what it is, when every record holds the same one; else ``(None, '')``."""
    levels = {(record.extra.get('baselines', {}).get(metric),
               record.extra.get('baseline_basis', '')) for record in records}
    if len(levels) != 1:
        return None, ''
    level, basis = levels.pop()
    return (None, '') if level is None else (float(level), basis)


def _images_texts(counts: Mapping[str, int]) -> tuple[int, int] | None:
    """``(images or videos, texts)`` of an evaluation's counts, or None when one is missing."""
    visuals = counts.get('images', counts.get('videos'))
    if visuals is not None and 'texts' in counts:
        return int(visuals), int(counts['texts'])
    return None
