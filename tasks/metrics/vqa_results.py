"""The result file the VQAv2 evaluation server (EvalAI) takes: ``[{"question_id", "answer"}]``.

The server scores test-dev and test-std from one file answering every question of the
test2015 question file, one answer each, ``question_id`` an integer and ``answer`` a string.
A file that breaks this is rejected after upload (or scored wrongly), so it is checked here,
before anything is written.
"""
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Optional, Union

from harness.core.files import atomic_write_text


def _is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def vqa_result_records(predictions: Iterable[Mapping],
                       question_ids: Optional[Sequence[int]] = None) -> list[dict]:
    """Checked ``{"question_id": int, "answer": str}`` records, one per question.

    Args:
        predictions: records with ``question_id`` and ``answer`` (other keys are dropped).
        question_ids: every question the file must answer (e.g. the test question file's
            ids); when given, a missing or unknown question is an error and the records
            follow this order. Otherwise they keep the predictions' order.

    Raises:
        ValueError: naming the first bad record, a repeated question, or the missing and
            unknown questions.
    """
    answers: dict[int, str] = {}
    for position, prediction in enumerate(predictions):
        question_id, answer = prediction.get('question_id'), prediction.get('answer')
        if not _is_integer(question_id) or not isinstance(answer, str):
            raise ValueError(f'prediction #{position} is {dict(prediction)!r:.120}; the VQAv2 '
                             'server needs {"question_id": int, "answer": str}')
        if question_id in answers:
            raise ValueError(f'question_id {question_id} is answered more than once; keep '
                             'one answer per question')
        answers[question_id] = answer
    if question_ids is None:
        return [{'question_id': qid, 'answer': answer} for qid, answer in answers.items()]
    expected = set(question_ids)
    missing = [qid for qid in question_ids if qid not in answers]
    unknown = [qid for qid in answers if qid not in expected]
    if missing or unknown:
        raise ValueError(f'the predictions miss {len(missing)} questions (first: '
                         f'{missing[:5]}) and answer {len(unknown)} unknown ones (first: '
                         f'{unknown[:5]}); answer every question of the question file, '
                         'nothing else')
    return [{'question_id': qid, 'answer': answers[qid]} for qid in question_ids]


def write_vqa_results(path: Union[str, os.PathLike], predictions: Iterable[Mapping],
                      question_ids: Optional[Sequence[int]] = None) -> list[dict]:
    """Atomically write the server's result file; return the records written.

    See :func:`vqa_result_records` for the checks (nothing is written when one fails).
    """
    records = vqa_result_records(predictions, question_ids)
    atomic_write_text(path, json.dumps(records))
    return records
