"""Zero-shot video question answering by the BLIP paper's method, as the ``'video_qa'`` task.

BLIP never released its video QA code; the paper (Sec. 5.6) answers with the VQA model on
the clip's frames: every sampled frame (16) is encoded by the image encoder and the
frames' tokens are concatenated, ``[B, T * (1 + N), W]``, as the keys the question encoder
cross-attends to (:func:`encode_frames`). Answers are ranked from the QA set's answer list
(k = 128, BLIP's VQA rank inference) or generated; accuracy is the exact match of answer
and ground truth after the official VQA answer normalisation of both
(:func:`tasks.metrics.vqa.gqa_accuracy` with ``normalization='vqa'``).

Answering is :func:`tasks.vqa.answering.answer_dataset` (batched, sharded, resumable,
cached): the cache key covers the model, the questions, their clips, frames per clip,
sampling rule and frame size, so a repeated evaluation decodes no clip. Clips are surveyed
first (:mod:`.clips`): bad ones raise, or in skip mode are left out with their questions.
"""
from pathlib import Path
from typing import Optional

import torch

from harness.core.files import atomic_write_json
from harness.core.registry import TASKS
from harness.core.task_result import PERCENT, TaskResult, metrics_in

from ..batch_inference import on_main_process
from ..metrics.vqa import gqa_accuracy
from ..metrics.vqa_baselines import answers_by_frequency
from ..vqa.answering import answer_dataset
from .clips import survey_clips, without_bad_clips
from ..datasets.video_frames import repeats_frames

NORMALIZATION = 'vqa'  # both sides through the official VQA answer normalisation


def encode_frames(model, batch: dict, device) -> torch.Tensor:
    """A batch of clips ``[B, T, 3, S, S]`` as frame tokens concatenated, ``[B, T*(1+N), W]``.

    All frames go through ``model.encode_image`` at once; clip b's tokens are its frames'
    in order (frame 0's ``1 + N`` tokens first).
    """
    frames = batch['video'].to(device)
    tokens = model.encode_image(frames.flatten(0, 1))
    return tokens.reshape(frames.shape[0], frames.shape[1] * tokens.shape[1], tokens.shape[2])


def majority_baseline(training_answers, gold: list) -> dict:
    """Accuracy (%) of answering every question with the most frequent training answer,
    overall and per question (for paired tests of a model against it)."""
    answer = answers_by_frequency(training_answers)[0]
    guesses = [{'question_id': g['question_id'], 'answer': answer} for g in gold]
    scores = gqa_accuracy(guesses, gold, NORMALIZATION)
    return {'answer': answer, 'accuracy': scores['accuracy'],
            'per_question': scores['per_question']}


def _clip_counts(dataset, survey) -> dict:
    """Distinct clips asked about: usable, short (frames repeated) and skipped."""
    usable, short, bad, good = set(), set(), set(), set(survey.good)
    for index, count in enumerate(survey.frame_counts):
        path = dataset.media_path(index)
        if index not in good:
            bad.add(path)
        else:
            usable.add(path)
            if repeats_frames(count, dataset.num_frames):
                short.add(path)
    return {'videos': len(usable), 'short_clips': len(short), 'skipped_clips': len(bad)}


@TASKS.register_module(name='video_qa')
def evaluate_video_qa(model, dataset, *, method: str = 'rank', inference: Optional[dict] = None,
                      batch_size: int = 8, device='cpu', work_dir=None,
                      cache_key: Optional[str] = None, num_workers: int = 0,
                      save_every: int = 10) -> TaskResult:
    """Zero-shot open-ended video QA (MSRVTT-QA / MSVD-QA protocol of the BLIP paper).

    Args:
        model: a :class:`harness.core.model_api.VisualQuestionAnswering` (BLIP's VQA model).
        dataset: a :class:`tasks.datasets.VideoQADataset` (or one with its surface: items
            ``{'video', 'question', 'question_id'}``, ``answer_list``, ``training_answers``,
            ``gold_answers()``, ``select_questions()`` and the clip-survey methods).
        method: ``'rank'`` (default; over ``dataset.answer_list``) or ``'generate'``.
        inference: options of the method (:func:`tasks.vqa.answering.answer_dataset`;
            rank: ``k`` = 128).
        batch_size: questions per batch (each brings all its frames' tokens).
        work_dir: clip survey, answer cache and ``video_qa_<method>_result.json``; None
            caches nothing.
        cache_key: the model's identity in the cache; default: a hash of its weights.
        num_workers: DataLoader workers that decode the clips.

    Returns:
        ``accuracy`` (%), per-question scores (0/100) for paired tests, ``questions/s``
        (empty when cached), counts (questions, videos, frames per video, short and
        skipped clips, skipped questions), the majority-answer baseline where the dataset
        has training answers, and the answers in ``outputs['predictions']``.
    """
    survey = survey_clips(dataset, work_dir, num_workers)
    questions = without_bad_clips(dataset, survey, dataset.select_questions)
    predictions, throughput = answer_dataset(
        model, questions, method=method, options=inference, answer_list=questions.answer_list,
        device=device, work_dir=work_dir, cache_key=cache_key, batch_size=batch_size,
        num_workers=num_workers, save_every=save_every, encode=encode_frames)
    if work_dir:
        on_main_process(atomic_write_json, Path(work_dir) / f'video_qa_{method}_result.json',
                        predictions)
    gold = questions.gold_answers()
    scores = on_main_process(lambda: gqa_accuracy(predictions, gold, NORMALIZATION))
    result = TaskResult(
        metrics=metrics_in({'accuracy': scores['accuracy']}, PERCENT),
        per_sample={'accuracy': scores['per_question']}, throughput=throughput,
        counts={'questions': len(questions), **_clip_counts(dataset, survey),
                'frames_per_video': questions.num_frames,
                'skipped_questions': len(dataset) - len(questions)},
        outputs={'predictions': predictions})
    if questions.training_answers:
        baseline = majority_baseline(questions.training_answers, gold)
        result.baselines = {'accuracy': baseline['accuracy']}
        result.baseline_basis = ('every question answered with the most frequent training '
                                 f'answer ("{baseline["answer"]}")')
        result.baseline_per_sample = {'accuracy': baseline.pop('per_question')}
        result.outputs['majority_baseline'] = baseline
    return result
