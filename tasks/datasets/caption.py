"""Captioning evaluation sets: Karpathy val/test images with COCO-format ground truth."""
import pathlib
from typing import Optional

from harness.core.registry import DATASETS

from ..transforms import build_image_transform
from .annotations import TEXT, check_records, load_json, load_records
from .base import ImageListDataset, PathLike
from .errors import bad_sample
from .media import read_image


def image_id_from_file_name(image: str) -> Optional[int]:
    """The COCO image id in a file name: the digits after the last underscore of the stem.

    'val2014/COCO_val2014_000000391895.jpg' → 391895 (BLIP's rule),
    'images/toyworld_val_000123.png' → 123, 'flickr30k-images/1007129816.jpg' → 1007129816;
    None when that part is not a number.
    """
    tail = pathlib.PurePosixPath(image).stem.split('_')[-1]
    return int(tail) if tail.isdigit() else None


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
class CaptionEvalDataset(ImageListDataset):
    """Images to caption, each with the integer id its ground-truth captions use.

    Records are ``{"image": path, ...}`` (Karpathy val/test files). Items:
    ``{'image': FloatTensor[3, S, S], 'image_id': int}`` with the id taken from the file name
    (:func:`image_id_from_file_name`), checked against ``gt_file`` when the dataset is built.

    Args:
        data_root: folder the other paths are relative to (or a data source's name: 'toyworld').
        ann_file: the annotation file.
        gt_file: COCO-format ground truth; default: ann_file with '_gt' before '.json'.
        image_size: output side S.
        image_root: folder the records' image paths are relative to (from data_root).
        on_bad_sample: 'raise' or 'skip' (see :mod:`tasks.datasets.base`).
    """

    per_image_fields = ('images', 'image_ids')

    def __init__(self, data_root: PathLike, ann_file: PathLike,
                 gt_file: Optional[PathLike] = None, image_size: int = 384,
                 image_root: PathLike = '', on_bad_sample: str = 'raise'):
        super().__init__(data_root, on_bad_sample)
        self.ann_file = self.resolve(ann_file)
        self.gt_file = self.resolve(gt_file) if gt_file else \
            self.ann_file.with_name(self.ann_file.stem + '_gt.json')
        self.image_root = self.resolve(image_root)
        self.transform = build_image_transform(image_size, train=False)
        records = load_records(self.ann_file)
        check_records(self.ann_file, records, required={'image': TEXT}, kind='caption evaluation')
        self.images = [record['image'] for record in records]
        self.image_ids = []
        known_ids = _gt_image_ids(self.gt_file)
        for index, image in enumerate(self.images):
            image_id = image_id_from_file_name(image)
            if image_id is None or image_id not in known_ids:
                problem = (f'cannot read an image id from {image!r}' if image_id is None else
                           f'image id {image_id} (from {image!r}) is not in {self.gt_file}')
                raise bad_sample(self.ann_file, problem + '.', 'name images '
                                 '<anything>_<digits>.<ext> with the digits equal to the '
                                 "ground truth's image id, or pass the matching gt_file.",
                                 record_index=index)
            self.image_ids.append(image_id)
        self._start_guard()

    def load_item(self, index: int) -> dict:
        """The transformed image ``index`` and its ground-truth image id."""
        image = read_image(self.media_path(index), self.ann_file, index)
        return {'image': self.transform(image), 'image_id': self.image_ids[index]}
