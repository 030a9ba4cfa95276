"""CapFilt's report: what the filter removed, how well that matches known noise, caption quality.

Metrics (percentages, CIDEr x100 as leaderboards print them):

* ``noise_ratio_web`` / ``noise_ratio_synthetic``: share of web / synthetic texts the filter
  rejected (the paper's "noise ratio" is the web one);
* ``filter_precision`` / ``filter_recall`` / ``filter_f1``: "rejected" as a detector of the
  noisy web pairs, against a noise-label side file (ToyWorld writes
  ``pretrain_web_noise_labels.json``; real web data has none, so these are unavailable),
  beside ``web_noise_rate``, the labelled share of noisy web pairs, which is the precision
  of a filter that rejects at random;
* ``synthetic_CIDEr``: the synthetic captions against human captions of the same images
  where the human corpus has them, else the captioner's CIDEr on a COCO-format split
  (decoded the same way), as the caption stage measured it.

The noise labels are read here and nowhere else: no training code may see them.
"""
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..datasets.annotations import TEXT, check_records, load_records
from ..datasets.errors import bad_sample
from ..metrics.caption import score_captions
from .corpus import SOURCES, is_kept

CLEAN_LABEL = 'clean'


def rejection_quality(rejected: Sequence[bool], noisy: Sequence[bool]) -> Dict[str, float]:
    """Precision, recall and F1 (in %) of ``rejected`` as a detector of ``noisy`` pairs.

    A ratio with a zero denominator (nothing rejected, nothing noisy) is 0, as
    scikit-learn's ``zero_division=0``.
    """
    if len(rejected) != len(noisy):
        raise ValueError(f'{len(rejected)} rejection flags but {len(noisy)} noise labels')
    hits = sum(r and n for r, n in zip(rejected, noisy))
    precision = hits / sum(rejected) if any(rejected) else 0.0
    recall = hits / sum(noisy) if any(noisy) else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return dict(filter_precision=100 * precision, filter_recall=100 * recall,
                filter_f1=100 * f1)


def noise_ratios(scores: Sequence[dict], threshold: float) -> Dict[str, float]:
    """Percentage of web and of synthetic texts the filter rejected."""
    ratios = {}
    for source in SOURCES:
        mine = [score for score in scores if score['source'] == source]
        rejected = sum(not is_kept(score, threshold) for score in mine)
        ratios[f'noise_ratio_{source}'] = 100 * rejected / len(mine) if mine else 0.0
    return ratios


def read_noise_labels(path: Path, web_records: Sequence[dict]) -> List[bool]:
    """Per web record, whether its side-file label says noisy; records must align one to one."""
    labels = load_records(path)
    check_records(path, labels, required={'image': TEXT, 'caption': TEXT, 'label': TEXT},
                  kind='noise label')
    if len(labels) != len(web_records):
        raise bad_sample(path, f'{len(labels)} labels for {len(web_records)} web records.',
                         'use the label file written with this web corpus.')
    for index, (label, record) in enumerate(zip(labels, web_records)):
        if (label['image'], label['caption']) != (record['image'], record['caption']):
            raise bad_sample(path, f'the label is for ({label["image"]!r}, '
                             f'{label["caption"]!r:.60}), but web record {index} is '
                             f'({record["image"]!r}, {record["caption"]!r:.60}).',
                             'use the label file written with this web corpus.',
                             record_index=index)
    return [label['label'] != CLEAN_LABEL for label in labels]


def same_image_cider(synthetic: Sequence[dict], human: Sequence[dict]) -> Optional[float]:
    """CIDEr (x100) of synthetic captions against the human captions of the same images.

    ``None`` when no synthetic image has human captions (web images usually have none).
    """
    references: Dict[str, List[str]] = {}
    for pair in human:
        references.setdefault(pair['image'], []).append(pair['caption'])
    predictions = {pair['image']: pair['caption'] for pair in synthetic
                   if pair['image'] in references}
    if not predictions:
        return None
    return 100 * score_captions(references, predictions, ['CIDEr']).scores['CIDEr']


def capfilt_report(scores: Sequence[dict], threshold: float, web_records: Sequence[dict],
                   synthetic: Sequence[dict], human: Sequence[dict],
                   noise_labels: Optional[Path], probe_cider: Optional[float]) -> dict:
    """The report's metrics, the metrics it could not compute (with why), and notes.

    Args:
        scores: the filter's scored pairs (``source``, ``record``, ``p_match``...).
        threshold: the filter's match-probability threshold.
        web_records: the web corpus, in file order (``record`` indexes it).
        synthetic: one ``{image, caption}`` per web image.
        human: the human-annotated pairs.
        noise_labels: the noise-label side file, or ``None``/a missing path when there is none.
        probe_cider: the captioner's CIDEr on a COCO-format split, if the caption stage
            measured it.

    Returns:
        ``{'metrics': {...}, 'unavailable': {metric: reason}, 'notes': {...}}``.
    """
    metrics = noise_ratios(scores, threshold)
    unavailable, notes = {}, {}
    if noise_labels is not None and Path(noise_labels).is_file():
        noisy = read_noise_labels(Path(noise_labels), web_records)
        rejected = [False] * len(web_records)
        for score in scores:
            if score['source'] == 'web':
                rejected[score['record']] = not is_kept(score, threshold)
        metrics.update(rejection_quality(rejected, noisy))
        metrics['web_noise_rate'] = 100 * sum(noisy) / len(noisy) if noisy else 0.0
        notes['noise_labels'] = str(noise_labels)
    else:
        reason = f'no noise-label side file ({noise_labels or "none configured"}); real web ' \
                 'data has no ground truth of which pairs are noisy'
        unavailable.update({name: reason for name in ('filter_precision', 'filter_recall',
                                                      'filter_f1', 'web_noise_rate')})
    cider = same_image_cider(synthetic, human)
    if cider is not None:
        metrics['synthetic_CIDEr'] = cider
        notes['synthetic_CIDEr'] = 'synthetic captions vs human captions of the same images'
    elif probe_cider is not None:
        metrics['synthetic_CIDEr'] = probe_cider
        notes['synthetic_CIDEr'] = ('no web image has human captions: the captioner\'s CIDEr '
                                    'on the COCO-format probe split, decoded the same way')
    else:
        unavailable['synthetic_CIDEr'] = ('no web image has human captions and the caption '
                                          'stage has no probe_dataset')
    return dict(metrics=metrics, unavailable=unavailable, notes=notes)
