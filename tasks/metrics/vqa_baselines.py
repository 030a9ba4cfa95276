"""Majority-answer ("prior") baselines for VQAv2 and GQA: what a model scores by guessing.

The VQAv2 paper's "prior" baselines answer every question with the most frequent training
answer, overall or per question type. A trained model must beat them to show it looks at the
image; the boards report them next to the model's accuracy.

A training question's answer is its ``multiple_choice_answer`` (the most frequent of the ten
human answers). Ties go to the alphabetically first answer, so the baseline is deterministic.
Question types are VQAv2's ``question_type`` prefixes; a question from elsewhere (GQA) gets
the longest training type its lower-cased text starts with, and the overall answer when none
matches.
"""
import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Optional

from .vqa import gqa_accuracy, vqa_accuracy


def _most_frequent(answers: Counter) -> str:
    return min(answers, key=lambda answer: (-answers[answer], answer))


def answers_by_frequency(answers: Iterable[str]) -> list[str]:
    """The distinct ``answers``, most frequent first (ties alphabetical, as the baselines):
    a QA set's answer vocabulary, its first entry the majority answer."""
    counts = Counter(answers)
    return sorted(counts, key=lambda answer: (-counts[answer], answer))


@dataclasses.dataclass(frozen=True)
class MajorityAnswers:
    """The most frequent training answer overall and per question type."""

    overall: str
    per_type: dict[str, str]

    def type_of(self, question: str) -> Optional[str]:
        """The longest known question type that ``question`` (lower-cased) starts with."""
        text = question.strip().lower()
        matches = [t for t in self.per_type if text == t or text.startswith(t + ' ')]
        return max(matches, key=len, default=None)

    def answer(self, question_type: Optional[str]) -> str:
        """The majority answer of ``question_type`` (the overall one for an unknown type)."""
        return self.per_type.get(question_type, self.overall)


def majority_answers(train_annotations: Iterable[Mapping]) -> MajorityAnswers:
    """Count the answers of VQAv2 training annotation records.

    Args:
        train_annotations: records with ``question_type`` and ``multiple_choice_answer``
            (the ``annotations`` list of a VQAv2 annotation file).
    """
    overall, per_type = Counter(), {}
    for index, annotation in enumerate(train_annotations):
        missing = {'question_type', 'multiple_choice_answer'} - set(annotation)
        if missing:
            raise ValueError(f'training annotation #{index} lacks {sorted(missing)}; pass the '
                             'annotations of a VQAv2 annotation file')
        answer = annotation['multiple_choice_answer']
        overall[answer] += 1
        per_type.setdefault(annotation['question_type'], Counter())[answer] += 1
    if not overall:
        raise ValueError('no training annotations to count')
    return MajorityAnswers(_most_frequent(overall),
                           {qtype: _most_frequent(counts) for qtype, counts in per_type.items()})


def vqa_majority_baseline(train_annotations: Iterable[Mapping],
                          eval_annotations: Sequence[Mapping], revision: str = '2016') -> dict:
    """Official VQAv2 accuracy (%) of the overall and the per-question-type majority answer.

    Returns:
        ``{"overall_prior": %, "per_type_prior": %, "per_type_per_question": {question_id:
        %}, "answer": str, "per_type": {type: str}}`` where the accuracies are
        :func:`~.vqa.vqa_accuracy`'s ``overall`` (and ``per_question``, for paired tests of a
        model against the prior).
    """
    table = majority_answers(train_annotations)
    overall = [{'question_id': a['question_id'], 'answer': table.overall}
               for a in eval_annotations]
    per_type = [{'question_id': a['question_id'], 'answer': table.answer(a['question_type'])}
                for a in eval_annotations]
    per_type_scores = vqa_accuracy(per_type, eval_annotations, revision)
    return {'overall_prior': vqa_accuracy(overall, eval_annotations, revision)['overall'],
            'per_type_prior': per_type_scores['overall'],
            'per_type_per_question': per_type_scores['per_question'],
            'answer': table.overall, 'per_type': table.per_type}


def gqa_majority_baseline(train_annotations: Iterable[Mapping],
                          questions: Mapping[str, Mapping], normalization: str = 'exact'
                          ) -> dict:
    """GQA accuracy (%) of the VQAv2-trained majority answers (overall, per question type).

    GQA is evaluated zero-shot with a VQA model, so the priors come from VQAv2 training
    annotations; a GQA question's type is found from its text (:meth:`MajorityAnswers.type_of`).

    Args:
        train_annotations: VQAv2 training annotation records.
        questions: an official GQA questions file's content (``{id: {"question", "answer"}}``).
        normalization: passed to :func:`~.vqa.gqa_accuracy`.

    Returns:
        ``{"overall_prior": %, "per_type_prior": %, "per_type_per_question": {question_id:
        0 or 100}}``.
    """
    table = majority_answers(train_annotations)
    overall = [{'question_id': qid, 'answer': table.overall} for qid in questions]
    per_type = [{'question_id': qid, 'answer': table.answer(table.type_of(q['question']))}
                for qid, q in questions.items()]
    per_type_scores = gqa_accuracy(per_type, questions, normalization)
    return {'overall_prior': gqa_accuracy(overall, questions, normalization)['accuracy'],
            'per_type_prior': per_type_scores['accuracy'],
            'per_type_per_question': per_type_scores['per_question']}
