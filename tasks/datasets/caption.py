"""Caption evaluation sets: images to caption and the COCO-format ground truth that scores them.

Ground truth, in order of preference: the ``gt_file`` given; the ``<ann_file stem>_gt.json``
beside the list (BLIP's layout); otherwise it is derived from the list's own ``caption``s
(:func:`tasks.datasets.coco_captions.coco_ground_truth`) and written once, under a name
made from its content, to ``$XDG_CACHE_HOME/blip_harness/caption_gt/`` (``~/.cache`` when
the variable is unset). The derived file is a plain COCO caption file, so the evaluator,
the validation metric and any tool read it like BLIP's; a changed list gets a new file,
never a stale one.

Image ids: a record's ``image_id`` when present (an integer as is; a string through
:func:`image_id_from_text`), otherwise the digits ending the file name
(:func:`image_id_from_file_name`).
"""
import hashlib
import json
import pathlib
from typing import Optional, Union

from mmengine.logging import print_log

from harness.core.files import atomic_write_json
from harness.core.registry import DATASETS
from harness.core.user_cache import user_cache_folder

from .annotations import IDENTIFIER, TEXT, TEXT_OR_TEXTS, check_records, load_json, load_records
from .base import PathLike
from .coco_captions import coco_ground_truth
from .errors import bad_sample
from .eval_images import EvalImageDataset

HASHED_ID_BYTES = 6  # hashed string ids stay below 2**48: exact in JSON, int64 and float64


def _number_after_last_underscore(text: str) -> Optional[int]:
    tail = text.split('_')[-1]
    return int(tail) if tail.isascii() and tail.isdigit() else None


def image_id_from_file_name(image: str) -> Optional[int]:
    """The COCO image id in a file name: the digits after the last underscore of the stem.

    'val2014/COCO_val2014_000000391895.jpg' → 391895 (BLIP's rule),
    'images/toyworld_val_000123.png' → 123, 'flickr30k-images/1007129816.jpg' → 1007129816;
    None when that part is not a number.
    """
    return _number_after_last_underscore(pathlib.PurePosixPath(image).stem)


def image_id_from_text(image_id: str) -> int:
    """The integer a string ``image_id`` stands for, the same on every run and machine.

    The digits after its last underscore when there are any ('coco_203564' → 203564, as
    in BLIP's train files; '1007129816' → 1007129816), so it matches COCO ground truth;
    otherwise the first 48 bits of the string's SHA-256 ('my dog' → a fixed large id).
    """
    number = _number_after_last_underscore(image_id)
    if number is not None:
        return number
    return int.from_bytes(hashlib.sha256(image_id.encode('utf-8')).digest()[:HASHED_ID_BYTES],
                          'big')


def _record_image_id(record: dict) -> Optional[int]:
    """The id of an evaluation record (its ``image_id``, else its file name's), or None."""
    if 'image_id' not in record:
        return image_id_from_file_name(record['image'])
    value = record['image_id']
    return value if isinstance(value, int) else image_id_from_text(value)


def derived_gt_folder() -> pathlib.Path:
    """Where derived ground truths go: ``$XDG_CACHE_HOME/blip_harness/caption_gt``."""
    return user_cache_folder('caption_gt')


def _gt_image_ids(gt_file: pathlib.Path) -> set[int]:
    gt = load_json(gt_file)
    if not isinstance(gt, dict) or not isinstance(gt.get('images'), list) \
            or not isinstance(gt.get('annotations'), list):
        raise bad_sample(gt_file, "not a COCO caption file (needs lists 'images' and "
                         "'annotations').", 'pass the COCO-format *_gt.json file as gt_file.')
    try:
        return {image['id'] for image in gt['images']}
    except (KeyError, TypeError) as error:
        raise bad_sample(gt_file, f"an entry of 'images' lacks an 'id' ({error}).",
                         "give every image entry an integer 'id'.") from error


@DATASETS.register_module()
class CaptionEvalDataset(EvalImageDataset):
    """Images to caption, each with the integer id its ground-truth captions use.

    Records are ``{"image": path, "caption": [str, ...], "image_id": int | str}`` (BLIP's
    Karpathy val/test files have no ``image_id``; ``caption`` is read only when the ground
    truth is derived). Items: ``{'image': FloatTensor[3, S, S], 'image_id': int}`` (with
    ``decode='device'``, the image's encoded file: :mod:`tasks.datasets.eval_images`). See the
    module docstring for where the ground truth and the ids come from; every id must be
    unique and, with a ground-truth file, known to it.

    Args:
        data_root: folder the other paths are relative to (or a data source's name: 'toyworld').
        ann_file: the annotation file.
        gt_file: COCO-format ground truth; default: ann_file with '_gt' before '.json' when
            that file exists, else derived from the records' captions.
        image_size: output side S.
        image_root: folder the records' image paths are relative to (from data_root).
        on_bad_sample: 'raise' or 'skip' (see :mod:`tasks.datasets.base`).
        preprocessing: the image backbone's ``mean``/``std``/``interpolation``; the training
            and evaluation stages fill it from the model (default: CLIP's, bicubic).
        decode: ``'cpu'`` (default) or ``'device'``: where images are decoded and resized.

    Attributes:
        gt_file: the ground truth the evaluation scores against (the derived file's path
            when derived).
        source_image_ids: integer id → the record's string ``image_id``, for records that
            gave one (the derived ground truth keeps it as ``source_id``).
    """

    per_image_fields = ('images', 'image_ids')

    def __init__(self, data_root: PathLike, ann_file: PathLike,
                 gt_file: Optional[PathLike] = None, image_size: int = 384,
                 image_root: PathLike = '', on_bad_sample: str = 'raise',
                 preprocessing: Optional[dict] = None, decode: str = 'cpu'):
        super().__init__(data_root, on_bad_sample, image_size, preprocessing, decode)
        self.ann_file = self.resolve(ann_file)
        self.image_root = self.resolve(image_root)
        records = load_records(self.ann_file)
        check_records(self.ann_file, records, required={'image': TEXT},
                      optional={'image_id': IDENTIFIER}, kind='caption evaluation')
        self.images = [record['image'] for record in records]
        self.source_image_ids = {}
        besides = self.ann_file.with_name(self.ann_file.stem + '_gt.json')
        self.gt_file = self.resolve(gt_file) if gt_file else besides if besides.exists() \
            else None
        self.image_ids = self._read_ids(records)
        if self.gt_file is None:
            self.gt_file = self._derive_ground_truth(records, besides)
        self._start_guard()

    def _read_ids(self, records: list) -> list[int]:
        """Each record's id: unique and, with a ground-truth file, known to it."""
        known = _gt_image_ids(self.gt_file) if self.gt_file else None
        first_record: dict[int, int] = {}
        for index, record in enumerate(records):
            image_id = _record_image_id(record)
            if image_id is None:
                raise bad_sample(self.ann_file, f"cannot read an image id from "
                                 f"{record['image']!r} and the record has no 'image_id'.",
                                 "add an 'image_id' (an integer, or a string such as "
                                 "'coco_203564') to the record, or name the image "
                                 '<anything>_<digits>.<ext> with the digits equal to its '
                                 'ground-truth id.', record_index=index)
            source = f"image_id {record['image_id']!r}" if 'image_id' in record else \
                repr(record['image'])
            if image_id in first_record:
                raise bad_sample(self.ann_file, f'image id {image_id} (from {source}) is also '
                                 f'the id of record {first_record[image_id]}.',
                                 'keep one record per image, with all its captions, and give '
                                 "distinct images distinct 'image_id's.", record_index=index)
            if known is not None and image_id not in known:
                raise bad_sample(self.ann_file, f'image id {image_id} (from {source}) is not '
                                 f'in {self.gt_file}.', "give the record the 'image_id' the "
                                 'ground truth uses, or pass the matching gt_file.',
                                 record_index=index)
            first_record[image_id] = index
            if isinstance(record.get('image_id'), str):
                self.source_image_ids[image_id] = record['image_id']
        return list(first_record)

    def _derive_ground_truth(self, records: list, besides: pathlib.Path) -> pathlib.Path:
        """Write the records' captions as COCO-format ground truth; return its path."""
        for index, record in enumerate(records):
            if 'caption' not in record:
                raise bad_sample(self.ann_file, f"the record has no 'caption', and no ground "
                                 f'truth was given ({besides.name} does not exist).',
                                 "add the image's reference captions as 'caption' (a list of "
                                 'strings), or pass gt_file= (a COCO-format file; '
                                 '`python -m tasks.datasets.convert_coco` writes one).',
                                 record_index=index)
        check_records(self.ann_file, records, required={'caption': TEXT_OR_TEXTS},
                      kind='caption evaluation')
        images = [{'id': image_id, 'file_name': record['image'],
                   **({'source_id': record['image_id']}
                      if isinstance(record.get('image_id'), str) else {})}
                  for image_id, record in zip(self.image_ids, records)]
        captions = [_as_list(record['caption']) for record in records]
        ground_truth = coco_ground_truth(images, captions)
        digest = hashlib.sha256(json.dumps(ground_truth, sort_keys=True).encode()).hexdigest()
        path = derived_gt_folder() / f'{self.ann_file.stem}_{digest[:16]}_gt.json'
        if not path.exists():
            atomic_write_json(path, ground_truth)
        print_log(f'CaptionEvalDataset: no ground-truth file for {self.ann_file}; scoring '
                  f"against its records' captions, written to {path}", logger='current')
        return path

    def load_item(self, index: int) -> dict:
        """The image ``index`` (transformed, or encoded) and its ground-truth image id."""
        return {'image': self.eval_image(index, index), 'image_id': self.image_ids[index]}


def _as_list(captions: Union[str, list]) -> list:
    return [captions] if isinstance(captions, str) else captions
