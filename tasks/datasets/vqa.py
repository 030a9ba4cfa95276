"""VQAv2 (and Visual Genome QA) in BLIP's ``vqa_*.json`` format."""
import pathlib
from collections import Counter
from typing import Optional, Sequence, Union

import torch
from torch.utils.data import default_collate

from harness.core.registry import DATASETS, FUNCTIONS

from ..text import pre_question
from ..transforms import FINETUNE_CROP_SCALE, build_image_transform
from .annotations import IDENTIFIER, TEXT, TEXT_OR_TEXTS, FieldType, check_records, load_json, \
    load_records
from .base import AnnotationDataset, PathLike
from .errors import bad_sample
from .media import read_image

SPLITS = ('train', 'test')
SOURCE = FieldType("'vqa' or 'vg'", lambda v: v in ('vqa', 'vg'))
VG_ANSWER_WEIGHT = 0.2  # BLIP's weight of a Visual Genome answer


def answer_weights(answers: Union[str, list[str]], source: str) -> tuple[list[str], list[float]]:
    """BLIP's training targets: distinct answers, weighted by their share of annotators.

    VQAv2 records list every annotator's answer; a Visual Genome record has one answer,
    weighted 0.2.
    """
    if source == 'vg':
        return [answers if isinstance(answers, str) else answers[0]], [VG_ANSWER_WEIGHT]
    answers = [answers] if isinstance(answers, str) else answers
    counts = Counter(answers)
    distinct = list(dict.fromkeys(answers))
    return distinct, [counts[a] / len(answers) for a in distinct]


def load_answer_list(path: pathlib.Path) -> list[str]:
    """The candidate answers of rank inference: a JSON list of strings."""
    answers = load_json(path)
    if not isinstance(answers, list) or not answers or \
            not all(isinstance(a, str) for a in answers):
        raise bad_sample(path, 'the answer list is not a non-empty JSON list of strings.',
                         'pass the answer_list.json of the VQA annotations.')
    return answers


@DATASETS.register_module()
class VQADataset(AnnotationDataset):
    """Questions about images, from BLIP's VQA files (``vqa_train/val/test.json``, ``vg_qa``).

    ``split='train'`` needs records ``{"image", "question", "answer": [str...] or str,
    "dataset": "vqa"|"vg"}`` and yields ``{'image', 'question', 'answers': list[str],
    'weights': list[float]}`` (batch them with
    ``collate_fn=dict(type='harness.vqa_train_collate')``).
    ``split='test'`` needs ``{"question_id", "image", "question"}`` and yields ``{'image',
    'question', 'question_id'}``. Questions are cleaned by :func:`tasks.text.pre_question`.

    Args:
        data_root: folder the other paths are relative to (or a data source's name: 'toyworld').
        ann_file: one annotation file or a list of them.
        split: 'train' or 'test' (the item layout; evaluate val files with 'test').
        image_size: output side S (BLIP: 480).
        image_root: folder VQA records' image paths are relative to (from data_root).
        vg_image_root: the same for Visual Genome records.
        answer_list_file: optional candidate answers for rank inference → ``answer_list``.
        augment: whether training images get BLIP's random crop, flip and RandAugment
            (False: the evaluation resize only).
        hflip: whether training flips images horizontally (BLIP does; turn off when
            questions say 'left'/'right', as ToyWorld's do).
        crop_scale: training RandomResizedCrop's area range (BLIP: (0.5, 1.0)).
        max_question_words: question length cap.
        on_bad_sample: 'raise' or 'skip' (see :mod:`tasks.datasets.base`).
    """

    def __init__(self, data_root: PathLike, ann_file: Union[PathLike, Sequence[PathLike]],
                 split: str = 'train', image_size: int = 480, image_root: PathLike = '',
                 vg_image_root: PathLike = '', answer_list_file: Optional[PathLike] = None,
                 augment: bool = True, hflip: bool = True,
                 crop_scale: Sequence[float] = FINETUNE_CROP_SCALE, max_question_words: int = 50,
                 on_bad_sample: str = 'raise'):
        super().__init__(data_root, on_bad_sample)
        if split not in SPLITS:
            raise ValueError(f'VQADataset split={split!r}: use one of {SPLITS}.')
        self.split = split
        files = [ann_file] if isinstance(ann_file, (str, pathlib.PurePath)) else list(ann_file)
        self.ann_files = [self.resolve(f) for f in files]
        self.image_roots = {'vqa': self.resolve(image_root), 'vg': self.resolve(vg_image_root)}
        self.max_question_words = max_question_words
        self.transform = build_image_transform(image_size, train=split == 'train' and augment,
                                              hflip=hflip, crop_scale=crop_scale)
        self.answer_list = (load_answer_list(self.resolve(answer_list_file))
                            if answer_list_file else None)
        self._records = []  # (file index, record index, record)
        for file_index, path in enumerate(self.ann_files):
            records = load_records(path)
            if split == 'train':
                check_records(path, records, required={'image': TEXT, 'question': TEXT,
                                                       'answer': TEXT_OR_TEXTS},
                              optional={'dataset': SOURCE, 'question_id': IDENTIFIER},
                              kind='VQA train')
            else:
                check_records(path, records, required={'question_id': IDENTIFIER,
                                                       'image': TEXT, 'question': TEXT},
                              kind='VQA test')
            self._records += [(file_index, i, r) for i, r in enumerate(records)]
        self._start_guard()

    def limit(self, count: int) -> 'VQADataset':
        """Keep only the first ``count`` questions (smoke evaluations, ``run.py --limit``)."""
        self._records = self._records[:count]
        self._start_guard()
        return self

    def __len__(self) -> int:
        return len(self._records)

    def media_path(self, index: int) -> pathlib.Path:
        """The image file of question ``index``."""
        record = self._records[index][2]
        return self.image_roots[record.get('dataset', 'vqa')] / record['image']

    def load_item(self, index: int) -> dict:
        """Image, cleaned question and either weighted answers (train) or the question id."""
        file_index, record_index, record = self._records[index]
        image = read_image(self.media_path(index), self.ann_files[file_index], record_index)
        item = {'image': self.transform(image),
                'question': pre_question(record['question'], self.max_question_words)}
        if self.split == 'train':
            item['answers'], item['weights'] = answer_weights(record['answer'],
                                                              record.get('dataset', 'vqa'))
        else:
            item['question_id'] = record['question_id']
        return item


@FUNCTIONS.register_module()
def vqa_train_collate(batch: list[dict]) -> dict:
    """Batch VQA training items whose answer lists differ in length (as BLIP's collate).

    Returns ``image`` [B, 3, S, S], ``question`` (B strings), ``answers`` (all answers,
    flattened), ``weights`` [N] and ``answer_counts`` [B] (answers per question).
    """
    answers = [a for item in batch for a in item['answers']]
    return {'image': default_collate([item['image'] for item in batch]),
            'question': [item['question'] for item in batch],
            'answers': answers,
            'weights': torch.tensor([w for item in batch for w in item['weights']]),
            'answer_counts': torch.tensor([len(item['answers']) for item in batch])}
