"""GQA balanced question files (``testdev_balanced_questions.json`` and friends)."""
import pathlib
from typing import Optional

from harness.core.registry import DATASETS

from ..text import pre_question
from ..transforms import build_image_transform
from .annotations import TEXT, check_records, load_json
from .base import AnnotationDataset, PathLike
from .errors import bad_sample
from .media import read_image
from .vqa import load_answer_list


@DATASETS.register_module()
class GQADataset(AnnotationDataset):
    """GQA questions with their exact-match answers.

    The file maps question id → ``{"imageId", "question", "answer", ...}``; the image is
    ``<image_root>/<imageId><image_ext>``. Record indices in errors count the file's entries
    in order. Item: ``{'image': FloatTensor[3, S, S], 'question': str, 'question_id': str,
    'answer': str}``: the id and gold answer are what :func:`tasks.metrics.gqa_accuracy`
    scores; :meth:`gold_answers` gives all of them without reading images.

    Args:
        data_root: folder the other paths are relative to (or a data source's name: 'toyworld').
        ann_file: the questions file.
        image_root: image folder (from data_root).
        image_ext: image file extension ('.jpg' for GQA, '.png' for ToyWorld).
        image_size: output side S.
        answer_list_file: optional candidate answers for rank inference → ``answer_list``.
        max_question_words: question length cap.
        on_bad_sample: 'raise' or 'skip' (see :mod:`tasks.datasets.base`).
    """

    def __init__(self, data_root: PathLike, ann_file: PathLike, image_root: PathLike = 'images',
                 image_ext: str = '.jpg', image_size: int = 480,
                 answer_list_file: Optional[PathLike] = None, max_question_words: int = 50,
                 on_bad_sample: str = 'raise'):
        super().__init__(data_root, on_bad_sample)
        self.ann_file = self.resolve(ann_file)
        self.image_root = self.resolve(image_root)
        self.image_ext = image_ext
        self.max_question_words = max_question_words
        self.transform = build_image_transform(image_size, train=False)
        self.answer_list = (load_answer_list(self.resolve(answer_list_file))
                            if answer_list_file else None)
        questions = load_json(self.ann_file)
        if not isinstance(questions, dict) or not questions:
            raise bad_sample(self.ann_file, 'the top level is not a non-empty object mapping '
                             'question ids to questions.', 'pass a GQA *_questions.json file.')
        self.question_ids = list(questions)
        self._records = list(questions.values())
        check_records(self.ann_file, self._records,
                      required={'imageId': TEXT, 'question': TEXT, 'answer': TEXT},
                      kind='GQA question')
        self._start_guard()

    def limit(self, count: int) -> 'GQADataset':
        """Keep only the first ``count`` questions (smoke evaluations, ``run.py --limit``)."""
        self.question_ids = self.question_ids[:count]
        self._records = self._records[:count]
        self._start_guard()
        return self

    def gold_answers(self) -> dict[str, dict]:
        """``{question_id: {"question", "answer"}}`` of the kept questions (raw text), for
        ``gqa_accuracy`` and ``gqa_majority_baseline``."""
        return {qid: {'question': record['question'], 'answer': record['answer']}
                for qid, record in zip(self.question_ids, self._records)}

    def __len__(self) -> int:
        return len(self._records)

    def media_path(self, index: int) -> pathlib.Path:
        """The image file of question ``index``."""
        return self.image_root / f"{self._records[index]['imageId']}{self.image_ext}"

    def load_item(self, index: int) -> dict:
        """Image, cleaned question, question id and answer of question ``index``."""
        record = self._records[index]
        image = read_image(self.media_path(index), self.ann_file, index)
        return {'image': self.transform(image),
                'question': pre_question(record['question'], self.max_question_words),
                'question_id': self.question_ids[index], 'answer': record['answer']}
