"""mmengine ``BaseMetric`` wrappers that feed collected predictions to the metric functions.

Each wrapper reads its prediction from the data samples the model's ``predict`` returns
(mmengine's evaluator hands them over as dicts) and computes the metric once per evaluation
with :mod:`.caption` or :mod:`.vqa`. Retrieval has no wrapper: the retrieval loop calls
:func:`.retrieval.retrieval_metrics` on its score matrices directly.
"""
import json
from collections.abc import Sequence

from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from harness.core.registry import METRICS

from .caption import CAPTION_METRIC_FAMILIES, coco_caption_metrics
from .vqa import gqa_accuracy, vqa_accuracy


def _load_json(path: str, what: str):
    """Load a JSON annotation file, naming it on failure."""
    try:
        with open(path) as file:
            return json.load(file)
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f'cannot read {what} {path}: {error}') from error


class _PredictionRecordMetric(BaseMetric):
    """Collects one prediction record per data sample: ``{record_key: sample[sample_key]}``."""

    #: record key → data sample key; set by subclasses.
    fields: dict[str, str]

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Collect the prediction record of each predicted data sample."""
        for sample in data_samples:
            missing = [key for key in self.fields.values() if key not in sample]
            if missing:
                raise KeyError(f'{type(self).__name__} needs data sample keys {missing}; the '
                               f"model's predict mode must set them (found {sorted(sample)})")
            self.results.append({record_key: sample[sample_key]
                                 for record_key, sample_key in self.fields.items()})


class _AnswerAccuracyMetric(_PredictionRecordMetric):
    """Collects ``{"question_id", "answer"}`` records and keeps the annotation path."""

    def __init__(self, ann_file: str, prediction_key: str = 'answer', **kwargs) -> None:
        super().__init__(**kwargs)
        self.ann_file = ann_file
        self.fields = {'question_id': 'question_id', 'answer': prediction_key}


@METRICS.register_module()
class CocoCaptionMetric(_PredictionRecordMetric):
    """COCO caption metrics (BLEU-1..4, METEOR, ROUGE-L, CIDEr, SPICE) x100, as papers quote.

    Args:
        gt_file: COCO-format caption ground truth (``*_gt.json``).
        metrics: metric families to compute (see ``CAPTION_METRIC_FAMILIES``).
        prediction_key: data sample key holding the predicted caption.

    Metrics that cannot run (SPICE without its jars) are logged as a warning and returned
    under the non-scalar key ``unavailable`` (``{metric: reason}``). With both BLEU and CIDEr
    computed, ``CIDEr+BLEU-4`` is their sum, BLIP's checkpoint selection criterion
    (train_caption.py), for ``save_best='coco_caption/CIDEr+BLEU-4'``.
    """

    default_prefix = 'coco_caption'
    selection_key = 'CIDEr+BLEU-4'

    def __init__(self, gt_file: str, metrics: Sequence[str] = CAPTION_METRIC_FAMILIES,
                 prediction_key: str = 'caption', **kwargs) -> None:
        super().__init__(**kwargs)
        self.gt_file = gt_file
        self.metrics = tuple(metrics)
        self.fields = {'image_id': 'image_id', 'caption': prediction_key}

    def compute_metrics(self, results: list) -> dict:
        """Score the collected captions against ``gt_file``."""
        scores = coco_caption_metrics(self.gt_file, results, self.metrics)
        metrics = {name: 100.0 * value for name, value in scores.scores.items()}
        if 'CIDEr' in metrics and 'BLEU-4' in metrics:
            metrics[self.selection_key] = metrics['CIDEr'] + metrics['BLEU-4']
        if scores.unavailable:
            for name, reason in scores.unavailable.items():
                MMLogger.get_current_instance().warning(f'{name}: unavailable ({reason})')
            metrics['unavailable'] = dict(scores.unavailable)
        return metrics


@METRICS.register_module()
class VQAAccuracyMetric(_AnswerAccuracyMetric):
    """Official VQAv2 accuracy in percent: ``overall`` and one key per answer type.

    Args:
        ann_file: VQAv2 annotation file (``{"annotations": [...]}``).
        prediction_key: data sample key holding the predicted answer.
        revision: the official evaluator's revision, '2016' (default) or '2021'
            (see :mod:`tasks.metrics.vqa`).
    """

    default_prefix = 'vqa'

    def __init__(self, ann_file: str, prediction_key: str = 'answer', revision: str = '2016',
                 **kwargs) -> None:
        super().__init__(ann_file, prediction_key, **kwargs)
        self.revision = revision

    def compute_metrics(self, results: list) -> dict:
        """Score the collected answers against ``ann_file``."""
        content = _load_json(self.ann_file, 'VQAv2 annotation file')
        if not isinstance(content, dict) or 'annotations' not in content:
            raise ValueError(f'{self.ann_file} has no "annotations" list; pass a VQAv2 '
                             'annotation file (e.g. v2_mscoco_val2014_annotations.json)')
        accuracy = vqa_accuracy(results, content['annotations'], self.revision)
        return {'overall': accuracy['overall'], **accuracy['per_answer_type']}


@METRICS.register_module()
class GQAAccuracyMetric(_AnswerAccuracyMetric):
    """GQA exact-match accuracy in percent (key ``accuracy``).

    Args:
        ann_file: GQA questions file (official ``{question_id: {...}}`` or a list of
            ``{"question_id", "answer"}`` records).
        prediction_key: data sample key holding the predicted answer.
        normalization: 'exact' (default: stripped, lower-cased) or 'vqa' (see
            :func:`tasks.metrics.vqa.gqa_accuracy`).
    """

    default_prefix = 'gqa'

    def __init__(self, ann_file: str, prediction_key: str = 'answer',
                 normalization: str = 'exact', **kwargs) -> None:
        super().__init__(ann_file, prediction_key, **kwargs)
        self.normalization = normalization

    def compute_metrics(self, results: list) -> dict:
        """Score the collected answers against ``ann_file``."""
        questions = _load_json(self.ann_file, 'GQA questions file')
        return {'accuracy': gqa_accuracy(results, questions,
                                         self.normalization)['accuracy']}
