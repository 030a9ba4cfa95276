"""The ``vqa`` (VQAv2) and ``gqa`` evaluators.

Both answer every question with :func:`.answering.answer_dataset` and always write the
answers as the file the VQAv2 / GQA evaluation servers take (``[{question_id, answer}]``)
to the work dir, so a test-dev run is ready to upload. Where the dataset has answers,
they are scored: VQAv2 by the official accuracy (overall and per answer type; per question
type in ``outputs``), GQA by exact match. Each result carries the answer-prior baselines
of the same questions (:mod:`.baselines`) that boards draw beside the model.
"""
from pathlib import Path
from typing import Callable, Optional

from harness.core.files import atomic_write_json
from harness.core.registry import TASKS
from harness.core.task_result import PERCENT, TaskResult, metrics_in

from ..batch_inference import on_main_process
from ..datasets.vqav2 import records_of
from ..metrics.vqa import gqa_accuracy, vqa_accuracy
from ..metrics.vqa_baselines import gqa_majority_baseline, vqa_majority_baseline
from ..metrics.vqa_results import write_vqa_results
from .answering import answer_dataset

ANSWER_TYPES = ('yes/no', 'number', 'other')
PRIOR_BASIS = ('every question answered with the majority training answer of its question '
               'type, VQAv2 "per Q-type prior"')


def write_gqa_results(path: Path, predictions: list) -> None:
    """The GQA server's submission file: ``[{"questionId": str, "prediction": str}]``."""
    atomic_write_json(path, [{'questionId': str(p['question_id']), 'prediction': p['answer']}
                             for p in predictions], indent=None)


def prior_annotations(dataset, prior_annotation_file: Optional[str]) -> Optional[list]:
    """The VQAv2 training ``annotations`` the majority-answer baseline counts (None: none)."""
    if prior_annotation_file is None:
        return None
    return records_of(dataset.resolve(prior_annotation_file), 'annotations', 'annotations')[1]


def record_prior(result: TaskResult, baseline: dict) -> None:
    """Put the per-question-type prior's accuracy (overall and per question) in ``result``
    as its baseline; the whole baseline (overall prior, the answers) in its outputs."""
    result.baselines = {'accuracy': baseline['per_type_prior']}
    result.baseline_basis = PRIOR_BASIS
    result.baseline_per_sample = {'accuracy': {
        str(qid): score for qid, score in baseline['per_type_per_question'].items()}}
    result.outputs['majority_baseline'] = {k: v for k, v in baseline.items()
                                           if k != 'per_type_per_question'}


def _answers(model, dataset, write: Callable, *, method, inference, device, work_dir,
             cache_key, batch_size, num_workers, save_every) -> tuple[list, dict]:
    """Answer the dataset and ``write`` the server's result file beside the cache."""
    predictions, throughput = answer_dataset(
        model, dataset, method=method, options=inference,
        answer_list=getattr(dataset, 'answer_list', None), device=device, work_dir=work_dir,
        cache_key=cache_key, batch_size=batch_size, num_workers=num_workers,
        save_every=save_every)
    if work_dir:
        on_main_process(write, Path(work_dir) / f'{method}_result.json', predictions)
    return predictions, throughput


@TASKS.register_module(name='vqa')
def evaluate_vqa(model, dataset, *, device='cpu', work_dir=None, cache_key=None,
                 method: str = 'rank', inference: Optional[dict] = None, batch_size: int = 32,
                 num_workers: int = 0, save_every: int = 10, revision: str = '2016',
                 prior_annotation_file: Optional[str] = None) -> TaskResult:
    """Answer VQAv2-style questions and score them with the official VQA accuracy.

    Args:
        model: satisfies :class:`harness.core.model_api.VisualQuestionAnswering`.
        dataset: yields ``{'image', 'question', 'question_id'}``; has ``answer_list`` (for
            ``rank``) and, where the split's answers are public, ``annotations()`` (the
            VQAv2 records; :class:`tasks.datasets.VQAv2Dataset` with an
            ``annotation_file``). Without answers only the result file is written.
        method: ``'rank'`` (BLIP's VQAv2 default) or ``'generate'``.
        inference: options of the method (see :func:`.answering.answer_dataset`).
        revision: the official evaluator's revision, ``'2016'`` or ``'2021'`` (see
            :func:`tasks.metrics.vqa.vqa_accuracy`).
        prior_annotation_file: a VQAv2 training annotation file (relative to the dataset's
            root): its per-question-type majority answers are scored as the baseline.

    Returns:
        ``accuracy`` and per-answer-type accuracies (%), per-question accuracy for paired
        tests, ``questions/s``, the prior baselines, and the answers in
        ``outputs['predictions']`` (per question type in ``outputs['per_question_type']``).
    """
    predictions, throughput = _answers(
        model, dataset, write_vqa_results, method=method, inference=inference, device=device,
        work_dir=work_dir, cache_key=cache_key, batch_size=batch_size, num_workers=num_workers,
        save_every=save_every)
    has_answers = getattr(dataset, 'annotation_file', None) is not None
    annotations = dataset.annotations() if has_answers else None
    result = TaskResult(metrics={}, throughput=throughput,
                        counts={'questions': len(predictions)},
                        outputs={'predictions': predictions})
    if not annotations:
        result.metrics = metrics_in({'accuracy': None}, PERCENT)
        result.unavailable['accuracy'] = ('the split has no public answers: upload the '
                                          'result file in the work dir to the VQA server')
        return result
    scores = on_main_process(lambda: vqa_accuracy(predictions, annotations, revision))
    by_type = scores['per_answer_type']
    result.metrics = metrics_in(
        {'accuracy': scores['overall'], **{t: by_type.get(t) for t in ANSWER_TYPES}}, PERCENT)
    result.unavailable.update({t: 'no question of this answer type'
                               for t in ANSWER_TYPES if t not in by_type})
    result.per_sample = {'accuracy': {str(q): a for q, a in scores['per_question'].items()}}
    result.outputs['per_question_type'] = scores['per_question_type']
    prior = prior_annotations(dataset, prior_annotation_file)
    if prior:
        record_prior(result, vqa_majority_baseline(prior, annotations, revision))
    return result


@TASKS.register_module(name='gqa')
def evaluate_gqa(model, dataset, *, device='cpu', work_dir=None, cache_key=None,
                 method: str = 'rank', inference: Optional[dict] = None, batch_size: int = 32,
                 num_workers: int = 0, save_every: int = 10, normalization: str = 'exact',
                 prior_annotation_file: Optional[str] = None) -> TaskResult:
    """Answer GQA balanced questions and score them by exact match.

    Args:
        dataset: yields ``{'image', 'question', 'question_id'}``; has ``gold_answers()``
            (``{question_id: {'question', 'answer'}}``) and, for ``rank``, ``answer_list``.
        normalization: ``'exact'`` (GQA's exact match, stripped and lower-cased) or
            ``'vqa'`` (both sides VQA-normalised), see :func:`tasks.metrics.vqa.gqa_accuracy`.
        prior_annotation_file: a VQAv2 training annotation file whose per-question-type
            majority answers are scored as the baseline (GQA is answered zero-shot by a
            VQAv2-trained model; a question's type is found from its text).
        The other arguments are :func:`evaluate_vqa`'s.
    """
    predictions, throughput = _answers(
        model, dataset, write_gqa_results, method=method, inference=inference, device=device,
        work_dir=work_dir, cache_key=cache_key, batch_size=batch_size, num_workers=num_workers,
        save_every=save_every)
    gold = dataset.gold_answers()
    scores = on_main_process(lambda: gqa_accuracy(predictions, gold, normalization))
    result = TaskResult(metrics=metrics_in({'accuracy': scores['accuracy']}, PERCENT),
                        per_sample={'accuracy': scores['per_question']},
                        throughput=throughput, counts={'questions': len(predictions)},
                        outputs={'predictions': predictions})
    prior = prior_annotations(dataset, prior_annotation_file)
    if prior:
        record_prior(result, gqa_majority_baseline(prior, gold, normalization))
    return result
