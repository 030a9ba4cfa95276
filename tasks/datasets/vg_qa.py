"""Visual Genome QA (the official ``question_answers.json``) as BLIP's extra VQA training data.

The file is a list with one entry per image, ``{"id": image id, "qas": [{"qa_id",
"image_id", "question", "answer", "q_objects", "a_objects"}...]}`` (``qas`` may be empty).
Images live in ``VG_100K/<image_id>.jpg`` or ``VG_100K_2/<image_id>.jpg``; the reader looks
in ``image_folders`` in order. Record indices in errors count the QA pairs of all entries in
file order.

VG answers are raw sentences' endings ("White.", "Two."); BLIP trains on them as VQAv2-like
answers, so by default they get the official VQA answer normalisation (lower case, no
punctuation, number words as digits, no articles: "Two." → "2"), the form VQAv2 answers
and the rank-inference answer list have. Each question has one answer, weighted 0.2
(BLIP's weight of a VG answer, :data:`~.vqa.VG_ANSWER_WEIGHT`).
"""
import pathlib
from collections.abc import Sequence

from harness.core.registry import DATASETS

from ..metrics.vqa_answer_processing import normalize_predicted_answer
from ..text import pre_question
from ..transforms import build_image_transform
from .annotations import TEXT, FieldType, check_records, load_records
from .base import AnnotationDataset, PathLike
from .errors import bad_sample
from .media import read_image
from .vqa import answer_weights
from .vqav2 import INTEGER

ANSWER_CLEANING = ('vqa', 'none')
QA_LIST = FieldType('a list of QA objects', lambda v: isinstance(v, list))


@DATASETS.register_module()
class VisualGenomeQADataset(AnnotationDataset):
    """Visual Genome question/answer pairs as VQA training items (``dataset='vg'``).

    Item: ``{'image', 'question', 'answers': [answer], 'weights': [0.2]}``, the layout of
    :class:`~.vqa.VQADataset` train items, so ``vqa_train_collate`` batches both together.

    Args:
        data_root: folder the other paths are relative to.
        ann_file: the ``question_answers.json`` file.
        image_size: output side S (BLIP: 480).
        image_root: the Visual Genome image folder (from data_root).
        image_folders: sub-folders of ``image_root`` holding ``<image_id>.jpg``, searched in
            order.
        answer_cleaning: 'vqa' (default; the VQA evaluator's normalisation) or 'none'.
        max_question_words: question length cap.
        on_bad_sample: 'raise' or 'skip' (see :mod:`tasks.datasets.base`); in skip mode a QA
            whose answer cleans to nothing is dropped (counted in ``dropped_references``).
    """

    def __init__(self, data_root: PathLike, ann_file: PathLike = 'question_answers.json',
                 image_size: int = 480, image_root: PathLike = '',
                 image_folders: Sequence[str] = ('VG_100K', 'VG_100K_2'),
                 answer_cleaning: str = 'vqa', max_question_words: int = 50,
                 on_bad_sample: str = 'raise'):
        super().__init__(data_root, on_bad_sample)
        if answer_cleaning not in ANSWER_CLEANING:
            raise ValueError(f'VisualGenomeQADataset answer_cleaning={answer_cleaning!r}: use '
                             f'one of {ANSWER_CLEANING}.')
        self.ann_file = self.resolve(ann_file)
        self.image_root = self.resolve(image_root)
        self.image_folders = tuple(image_folders)
        self.max_question_words = max_question_words
        self.transform = build_image_transform(image_size, train=True)
        entries = load_records(self.ann_file)
        check_records(self.ann_file, entries, required={'qas': QA_LIST},
                      kind='Visual Genome image entry')
        qas = [qa for entry in entries for qa in entry['qas']]
        if not qas:
            raise bad_sample(self.ann_file, 'no image entry holds a QA pair.',
                             'pass the question_answers.json of Visual Genome.')
        check_records(self.ann_file, qas, required={'image_id': INTEGER, 'question': TEXT,
                                                    'answer': TEXT},
                      optional={'qa_id': INTEGER}, kind='Visual Genome QA')
        self._records = []  # (record index, image id, question, cleaned answer)
        for index, qa in enumerate(qas):
            answer = self._clean(qa['answer'], answer_cleaning, index)
            if answer is not None:
                self._records.append((index, qa['image_id'], qa['question'], answer))
        self._start_guard()

    def _clean(self, answer: str, cleaning: str, index: int):
        """The training answer; None (skip mode) when it cleans to nothing."""
        cleaned = normalize_predicted_answer(answer) if cleaning == 'vqa' else answer.strip()
        if cleaned:
            return cleaned
        error = bad_sample(self.ann_file, f'answer {answer!r:.80} is empty once cleaned.',
                           "fix or drop the QA pair (or pass on_bad_sample='skip').",
                           record_index=index)
        if self.on_bad_sample == 'raise':
            raise error
        self.dropped_references += 1
        self._warn_skipped('an answer that cleans to nothing', error)
        return None

    def limit(self, count: int) -> 'VisualGenomeQADataset':
        """Keep only the first ``count`` QA pairs."""
        self._records = self._records[:count]
        self._start_guard()
        return self

    def __len__(self) -> int:
        return len(self._records)

    def media_path(self, index: int) -> pathlib.Path:
        """The image of QA ``index``: the first folder holding it (else the first folder)."""
        name = f'{self._records[index][1]}.jpg'
        candidates = [self.image_root / folder / name for folder in self.image_folders]
        return next((path for path in candidates if path.is_file()), candidates[0])

    def load_item(self, index: int) -> dict:
        """Image, cleaned question and the single answer, weighted 0.2."""
        record_index, _, question, answer = self._records[index]
        image = read_image(self.media_path(index), self.ann_file, record_index)
        answers, weights = answer_weights(answer, 'vg')
        return {'image': self.transform(image),
                'question': pre_question(question, self.max_question_words),
                'answers': answers, 'weights': weights}
