"""The official VQAv2 files: ``v2_OpenEnded_mscoco_<split>_questions.json`` + annotations.

The questions file holds ``{"data_subtype": "train2014", "questions": [{"question_id",
"image_id", "question"}...]}``; the annotations file ``{"annotations": [{"question_id",
"answers": [{"answer", "answer_confidence", "answer_id"} x10], "multiple_choice_answer",
"question_type", "answer_type"}...]}`` (none for test2015). Images are found by formatting
``image_pattern`` with the question's ``image_id`` and the file's ``subtype``
(``data_subtype``): COCO's ``COCO_train2014_000000123456.jpg`` by default;
``'COCO_test2015_{image_id:012d}.jpg'`` for test-dev (its images are test2015's);
``'images/toyworld_vqa_<split>_{image_id:06d}.png'`` for ToyWorld.
"""
import pathlib
from typing import Optional, Sequence

from harness.core.registry import DATASETS

from ..text import pre_question
from ..transforms import FINETUNE_CROP_SCALE, build_image_transform
from .annotations import INTEGER, TEXT, FieldType, check_records, load_json
from .base import AnnotationDataset, PathLike
from .errors import bad_sample
from .media import read_image
from .vqa import SPLITS, answer_weights, load_answer_list

COCO_IMAGE_PATTERN = 'COCO_{subtype}_{image_id:012d}.jpg'
HUMAN_ANSWERS = FieldType(
    'a non-empty list of {"answer": non-empty string, ...} objects',
    lambda v: isinstance(v, list) and len(v) > 0 and all(
        isinstance(a, dict) and TEXT.accepts(a.get('answer')) for a in v))


def records_of(path: pathlib.Path, key: str, what: str) -> tuple[dict, list]:
    """The parsed file and its non-empty list under ``key``; BadSampleError otherwise."""
    content = load_json(path)
    if not isinstance(content, dict) or not isinstance(content.get(key), list) \
            or not content[key]:
        raise bad_sample(path, f'the file has no non-empty {key!r} list.',
                         f'pass an official VQAv2 {what} file.')
    return content, content[key]


@DATASETS.register_module()
class VQAv2Dataset(AnnotationDataset):
    """Questions about COCO (or ToyWorld) images from the official VQAv2 file pair.

    ``split='train'`` needs ``annotation_file`` and yields ``{'image', 'question',
    'answers', 'weights'}`` like :class:`~.vqa.VQADataset` (batch them with
    ``collate_fn=dict(type='harness.vqa_train_collate')``). ``split='test'`` yields ``{'image',
    'question', 'question_id'}``; with an ``annotation_file`` :meth:`annotations` gives the
    records :func:`tasks.metrics.vqa_accuracy` scores against. Every question must have an
    annotation when the file is given.

    Args:
        data_root: folder the other paths are relative to (or a data source's name: 'toyworld').
        question_file: the ``v2_OpenEnded_mscoco_<split>_questions.json`` file.
        annotation_file: the ``v2_mscoco_<split>_annotations.json`` file (None for test).
        split: 'train' or 'test' (the item layout; evaluate val files with 'test').
        image_size: output side S (BLIP: 480).
        image_root: the image folder (from data_root), e.g. ``coco/train2014``.
        image_pattern: image file name, formatted with ``image_id`` and ``subtype``.
        answer_list_file: optional candidate answers for rank inference → ``answer_list``.
        augment: whether training images get BLIP's random crop, flip and RandAugment
            (False: the evaluation resize only).
        hflip: whether training flips images horizontally (BLIP does; turn off when
            questions say 'left'/'right', as ToyWorld's do).
        crop_scale: training RandomResizedCrop's area range (BLIP: (0.5, 1.0)).
        max_question_words: question length cap.
        on_bad_sample: 'raise' or 'skip' (see :mod:`tasks.datasets.base`).
    """

    def __init__(self, data_root: PathLike, question_file: PathLike,
                 annotation_file: Optional[PathLike] = None, split: str = 'train',
                 image_size: int = 480, image_root: PathLike = '',
                 image_pattern: str = COCO_IMAGE_PATTERN,
                 answer_list_file: Optional[PathLike] = None, augment: bool = True,
                 hflip: bool = True, crop_scale: Sequence[float] = FINETUNE_CROP_SCALE,
                 max_question_words: int = 50,
                 on_bad_sample: str = 'raise'):
        super().__init__(data_root, on_bad_sample)
        if split not in SPLITS:
            raise ValueError(f'VQAv2Dataset split={split!r}: use one of {SPLITS}.')
        if split == 'train' and annotation_file is None:
            raise ValueError("VQAv2Dataset split='train' needs annotation_file (the "
                             'v2_mscoco_<split>_annotations.json with the answers).')
        self.split = split
        self.question_file = self.resolve(question_file)
        self.image_root = self.resolve(image_root)
        self.max_question_words = max_question_words
        self.transform = build_image_transform(image_size, train=split == 'train' and augment,
                                              hflip=hflip, crop_scale=crop_scale)
        self.answer_list = (load_answer_list(self.resolve(answer_list_file))
                            if answer_list_file else None)
        content, self._questions = records_of(self.question_file, 'questions', 'questions')
        check_records(self.question_file, self._questions,
                      required={'question_id': INTEGER, 'image_id': INTEGER, 'question': TEXT},
                      kind='VQAv2 question')
        self.subtype = str(content.get('data_subtype', ''))
        self.image_pattern = image_pattern
        self._check_pattern()
        self.annotation_file = self.resolve(annotation_file) if annotation_file else None
        self._annotation_of = self._load_annotations() if self.annotation_file else None
        self._start_guard()

    def annotation_files(self) -> list[pathlib.Path]:
        """The question file (the inputs; the answers decide no prediction)."""
        return [self.question_file]

    def _check_pattern(self) -> None:
        try:
            self._image_name(self._questions[0])
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(f'VQAv2Dataset image_pattern={self.image_pattern!r} cannot be '
                             f'formatted ({error!r}); use the fields {{image_id}} and '
                             f'{{subtype}}, e.g. {COCO_IMAGE_PATTERN!r}.') from error

    def _image_name(self, question: dict) -> str:
        return self.image_pattern.format(image_id=question['image_id'], subtype=self.subtype)

    def _load_annotations(self) -> dict:
        """Question id → annotation, checked against the questions."""
        path = self.annotation_file
        _, annotations = records_of(path, 'annotations', 'annotations')
        check_records(path, annotations, required={'question_id': INTEGER,
                                                   'answers': HUMAN_ANSWERS},
                      kind='VQAv2 annotation')
        annotation_of = {a['question_id']: a for a in annotations}
        for index, question in enumerate(self._questions):
            if question['question_id'] not in annotation_of:
                raise bad_sample(self.question_file, f"question_id {question['question_id']} "
                                 f'has no annotation in {path}.', 'pass the annotation file '
                                 'of the same split as the questions.', record_index=index)
        return annotation_of

    def limit(self, count: int) -> 'VQAv2Dataset':
        """Keep only the first ``count`` questions (smoke evaluations, ``run.py --limit``)."""
        self._questions = self._questions[:count]
        self._start_guard()
        return self

    def annotations(self) -> list[dict]:
        """The annotation records of the kept questions (for ``vqa_accuracy``)."""
        if self._annotation_of is None:
            raise ValueError(f'{self.question_file}: no annotation_file was given, so there '
                             'are no answers to score against (test2015 answers are private; '
                             'submit a result file to the evaluation server).')
        return [self._annotation_of[q['question_id']] for q in self._questions]

    def __len__(self) -> int:
        return len(self._questions)

    def media_path(self, index: int) -> pathlib.Path:
        """The image file of question ``index``."""
        return self.image_root / self._image_name(self._questions[index])

    def load_item(self, index: int) -> dict:
        """Image, cleaned question and either weighted answers (train) or the question id."""
        question = self._questions[index]
        image = read_image(self.media_path(index), self.question_file, index)
        item = {'image': self.transform(image),
                'question': pre_question(question['question'], self.max_question_words)}
        if self.split == 'train':
            answers = [a['answer'] for a in self._annotation_of[question['question_id']]
                       ['answers']]
            item['answers'], item['weights'] = answer_weights(answers, 'vqa')
        else:
            item['question_id'] = question['question_id']
        return item
