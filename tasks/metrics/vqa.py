"""Question-answering accuracy: the official VQAv2 accuracy and GQA exact match.

VQAv2 follows the official evaluator (GT-Vision-Lab/VQA ``vqaEval.py``) line for line in
what it computes, including its quirks (see :mod:`.vqa_answer_processing` for the answer
processing). The evaluator has two revisions that score differently (``revision=``):

``'2016'`` (commit 458a8b2, 2016-10-08; the default):

* The prediction is stripped, punctuation-processed, then digit/article-processed.
* Ground-truth answers get *only* the punctuation step (no lower-casing, no number words,
  no articles), and only when the ten answers of a question are not all identical. The
  official annotations are already normalised, so this matters only for raw answers.
  Nor are they stripped afterwards: a raw ``"yes!"`` becomes ``"yes "`` and matches nothing.

``'2021'`` (commit a013f00, 2021-03-11, "Fixed processing answers bug"):

* Every ground-truth answer and the prediction have newlines/tabs blanked and are stripped.
* Only when the (stripped) ten answers are not all identical do *both* sides get the
  punctuation and the digit/article steps. When they all agree, neither side is processed
  further: ``"Yes"`` or ``"yes."`` scores 0 against ten ``"yes"``.

Both revisions then score alike:

* Leave-one-out: for each ground-truth answer, the others are the answers *not equal to
  it as a whole record* (answer, confidence and id). With VQAv2's unique ``answer_id`` this
  drops exactly one answer; records that are equal in every field drop out together, as in
  the official code.
* Per-question accuracy = mean over the left-out answers of ``min(1, matches / 3)``; with
  k of 10 humans agreeing: k=1 → 0.3, k=2 → 0.6, k=3 → 0.9, k≥4 → 1.0.

Why ``'2016'`` is the default: BLIP's VQAv2 numbers are test-dev/test-std scores of the
EvalAI server, whose script is not public; BLIP's own code holds no VQA evaluator. The
2016 revision is the one the field evaluated with when BLIP was published (it was the
repository's code from 2016 to March 2021), and the evaluator the BLIP authors ship for
local VQAv2 scoring (salesforce/LAVIS ``lavis/common/vqa_tools/vqa_eval.py``) is the 2016
revision. On the official annotations (already lower-case, punctuation-free, digits) and
BLIP's lower-case answers the two revisions agree almost everywhere.

Accuracies are returned in percent, unrounded (the official evaluator rounds to two decimals
for display only). Only the questions present in the predictions are scored, like the
official ``evaluate(quesIds=...)``; predictions for unknown questions are an error.
"""
from collections.abc import Mapping, Sequence
from statistics import fmean

from .vqa_answer_processing import (blank_whitespace, normalize_predicted_answer,
                                   process_digit_article, process_punctuation)

REVISIONS = ('2016', '2021')
GQA_NORMALIZATIONS = ('exact', 'vqa')


def _index_predictions(predictions: Sequence[Mapping], key_of=lambda qid: qid) -> dict:
    """Map question id → predicted answer, rejecting malformed or duplicated entries."""
    answers = {}
    for position, prediction in enumerate(predictions):
        missing = {'question_id', 'answer'} - set(prediction)
        if missing:
            raise ValueError(f'prediction #{position} lacks {sorted(missing)}; each prediction '
                             'must be {"question_id": ..., "answer": str}')
        question_id = key_of(prediction['question_id'])
        if question_id in answers:
            raise ValueError(f'question_id {question_id!r} is predicted more than once; '
                             'keep one answer per question')
        answers[question_id] = str(prediction['answer'])
    return answers


def _unknown_questions_error(unknown: list, source: str) -> ValueError:
    """Build the error for predictions whose question is not in the annotations."""
    shown = ', '.join(repr(qid) for qid in unknown[:5])
    more = f' (and {len(unknown) - 5} more)' if len(unknown) > 5 else ''
    return ValueError(f'{len(unknown)} predicted question ids are not in the {source}: '
                      f'{shown}{more}; predictions and annotations must come from the same split')


def _check_revision(revision: str) -> None:
    if revision not in REVISIONS:
        raise ValueError(f'revision={revision!r}: use one of {REVISIONS} (the official '
                         'vqaEval.py of 2016 or its 2021 fix)')


def _processed_answers(predicted_answer: str, records: list[dict], revision: str) -> str:
    """Apply ``revision``'s processing to the gt ``records`` (in place); the prediction."""
    if revision == '2016':
        if len({record['answer'] for record in records}) > 1:
            for record in records:
                record['answer'] = process_punctuation(record['answer'])
        return normalize_predicted_answer(predicted_answer)
    for record in records:
        record['answer'] = blank_whitespace(record['answer'])
    prediction = blank_whitespace(predicted_answer)
    if len({record['answer'] for record in records}) > 1:
        for record in records:
            record['answer'] = process_digit_article(process_punctuation(record['answer']))
        prediction = process_digit_article(process_punctuation(prediction))
    return prediction


def vqa_question_accuracy(predicted_answer: str, human_answers: Sequence[Mapping],
                          revision: str = '2016') -> float:
    """Official VQA accuracy (0..1) of one predicted answer against the human answer records.

    Args:
        predicted_answer: the model's raw answer string.
        human_answers: the question's ``answers`` records (``{"answer", "answer_confidence",
            "answer_id"}``), normally ten.
        revision: '2016' or '2021', the official evaluator's revision (module docstring).
    """
    _check_revision(revision)
    records = [dict(record) for record in human_answers]
    prediction = _processed_answers(predicted_answer, records, revision)
    leave_one_out = []
    for left_out in records:
        others = [record for record in records if record != left_out]
        matches = sum(record['answer'] == prediction for record in others)
        leave_one_out.append(min(1, matches / 3))
    return sum(leave_one_out) / len(leave_one_out)


def _percent_mean(accuracies: list[float]) -> float:
    """Mean accuracy in percent, summed in the official ``setAccuracy`` order."""
    return 100 * sum(accuracies) / len(accuracies)


def vqa_accuracy(predictions: Sequence[Mapping], annotations: Sequence[Mapping],
                 revision: str = '2016') -> dict:
    """Official VQAv2 accuracy of predictions against VQAv2 annotation records.

    Args:
        predictions: ``[{"question_id": int, "answer": str}, ...]``.
        annotations: the ``annotations`` list of a VQAv2 annotation file (each with
            ``question_id``, ``answers``, ``answer_type``, ``question_type``).
        revision: '2016' (default) or '2021', the official evaluator's revision (see the
            module docstring for how they differ and why 2016 is the default).

    Returns:
        ``{"overall": %, "per_answer_type": {type: %}, "per_question_type": {type: %},
        "per_question": {question_id: %}, "num_questions": int}``.
    """
    _check_revision(revision)
    annotation_of = {annotation['question_id']: annotation for annotation in annotations}
    answers = _index_predictions(predictions)
    unknown = [qid for qid in answers if qid not in annotation_of]
    if unknown:
        raise _unknown_questions_error(unknown, 'VQA annotations')
    if not answers:
        raise ValueError('no predictions to score')

    per_question, by_answer_type, by_question_type = {}, {}, {}
    for question_id, answer in answers.items():
        annotation = annotation_of[question_id]
        accuracy = vqa_question_accuracy(answer, annotation['answers'], revision)
        per_question[question_id] = accuracy
        by_answer_type.setdefault(annotation['answer_type'], []).append(accuracy)
        by_question_type.setdefault(annotation['question_type'], []).append(accuracy)
    return {
        'overall': _percent_mean(list(per_question.values())),
        'per_answer_type': {name: _percent_mean(accs) for name, accs in by_answer_type.items()},
        'per_question_type': {
            name: _percent_mean(accs) for name, accs in by_question_type.items()},
        'per_question': {qid: 100 * accuracy for qid, accuracy in per_question.items()},
        'num_questions': len(per_question),
    }


def normalize_gqa_answer(answer: str, normalization: str = 'exact') -> str:
    """A GQA answer as compared: stripped and lower-cased, or VQA-normalised.

    ``'exact'`` strips and lower-cases (GQA's gold answers are already lower-case);
    ``'vqa'`` applies the official VQA prediction normalisation (punctuation, number words,
    articles, contractions; :func:`.normalize_predicted_answer`).
    """
    if normalization not in GQA_NORMALIZATIONS:
        raise ValueError(f'normalization={normalization!r}: use one of {GQA_NORMALIZATIONS}')
    if normalization == 'vqa':
        return normalize_predicted_answer(str(answer))
    return str(answer).strip().lower()


def _gqa_gold_answers(questions: Mapping | Sequence[Mapping]) -> dict[str, str]:
    """Map question id (as a string) → gold answer, from either GQA question layout."""
    if isinstance(questions, Mapping):
        records = ((qid, question) for qid, question in questions.items())
    else:
        records = ((question['question_id'], question) for question in questions)
    gold = {}
    for question_id, question in records:
        if 'answer' not in question:
            raise ValueError(f'GQA question {question_id!r} has no "answer" field; '
                             'score a split with answers (e.g. testdev_balanced, val)')
        gold[str(question_id)] = question['answer']
    return gold


def gqa_accuracy(predictions: Sequence[Mapping], questions: Mapping | Sequence[Mapping],
                 normalization: str = 'exact') -> dict:
    """GQA accuracy: exact match of the predicted and gold answers, both normalised alike.

    GQA's official ``eval.py`` compares the answer strings as they are; the default
    ``'exact'`` strips and lower-cases both (forgiving only the model's casing and spaces).
    ``'vqa'`` applies the VQA evaluator's prediction normalisation to both sides, as
    LAVIS-derived GQA evaluations do (salesforce/LAVIS ``GQATask`` normalises the
    prediction only, which can never match a gold ``"t-shirt"``; its descendants normalise
    the gold answer too). Question ids are compared as strings, because the official files
    key questions by string ids.

    Args:
        predictions: ``[{"question_id": str | int, "answer": str}, ...]``.
        questions: the official questions file content (``{question_id: {"answer", ...}}``)
            or a list of ``{"question_id", "answer", ...}`` records.
        normalization: 'exact' (default) or 'vqa' (see :func:`normalize_gqa_answer`).

    Returns:
        ``{"accuracy": %, "per_question": {question_id: 0 or 100}, "num_questions": int}``.
    """
    normalize_gqa_answer('', normalization)  # rejects an unknown normalization early
    gold = _gqa_gold_answers(questions)
    answers = _index_predictions(predictions, key_of=str)
    unknown = [qid for qid in answers if qid not in gold]
    if unknown:
        raise _unknown_questions_error(unknown, 'GQA questions')
    if not answers:
        raise ValueError('no predictions to score')
    per_question = {
        qid: 100.0 * (normalize_gqa_answer(answer, normalization)
                      == normalize_gqa_answer(gold[qid], normalization))
        for qid, answer in answers.items()}
    return {'accuracy': fmean(per_question.values()),
            'per_question': per_question,
            'num_questions': len(per_question)}
