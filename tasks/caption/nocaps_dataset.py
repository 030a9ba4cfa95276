"""The NoCaps reader: BLIP's ``nocaps_{val,test}.json`` image lists, with optional ground truth.

BLIP's files hold one record per image, ``{"image": path, "img_id": int}``; the id is the
NoCaps image id the ground truth (``nocaps_val_4500_captions.json``: ``images`` with a
``domain`` each, ``annotations``) and the evaluation server use. The test split has no
public ground truth, so ``gt_file`` is optional.
"""
import pathlib
from typing import Optional

from harness.core.registry import DATASETS

from ..datasets.annotations import INTEGER, TEXT, check_records, load_json, load_records
from ..datasets.base import PathLike
from ..datasets.caption import CaptionEvalDataset
from ..datasets.errors import bad_sample
from ..datasets.eval_images import EvalImageDataset

DOMAINS = ('in-domain', 'near-domain', 'out-domain')


def load_nocaps_ground_truth(gt_file: pathlib.Path) -> dict:
    """The parsed ground truth, checked: ``images`` with ``id`` and a known ``domain``."""
    gt = load_json(gt_file)
    if not isinstance(gt, dict) or not isinstance(gt.get('images'), list) \
            or not isinstance(gt.get('annotations'), list):
        raise bad_sample(gt_file, "not a NoCaps caption file (needs lists 'images' and "
                         "'annotations').", 'pass nocaps_val_4500_captions.json (or the '
                         'ToyWorld nocaps_val_gt.json) as gt_file.')
    for index, image in enumerate(gt['images']):
        if not isinstance(image, dict) or not INTEGER.accepts(image.get('id')) \
                or image.get('domain') not in DOMAINS:
            raise bad_sample(gt_file, f"images[{index}] = {image!r:.120} lacks an integer "
                             f"'id' or a 'domain' among {DOMAINS}.", 'use the official '
                             'NoCaps ground truth, whose images carry both.')
    return gt


@DATASETS.register_module()
class NoCapsEvalDataset(EvalImageDataset):
    """NoCaps images to caption zero-shot, each with its NoCaps image id.

    Items are ``{'image': FloatTensor[3, S, S], 'image_id': int}``, read and transformed
    exactly as :class:`~tasks.datasets.caption.CaptionEvalDataset` does (same bad-sample
    handling).

    Args:
        data_root: folder the other paths are relative to (or 'toyworld', 'toyworld:tiny').
        ann_file: BLIP's ``nocaps_val.json`` / ``nocaps_test.json``.
        gt_file: NoCaps-format ground truth; None for the test split (no public captions).
        image_size: output side S.
        image_root: folder the records' image paths are relative to (from data_root).
        on_bad_sample: 'raise' or 'skip' (see :mod:`tasks.datasets.base`).
        decode: ``'cpu'`` (default) or ``'device'`` (:mod:`tasks.datasets.eval_images`).
    """

    load_item = CaptionEvalDataset.load_item
    per_image_fields = CaptionEvalDataset.per_image_fields

    def __init__(self, data_root: PathLike, ann_file: PathLike,
                 gt_file: Optional[PathLike] = None, image_size: int = 384,
                 image_root: PathLike = '', on_bad_sample: str = 'raise', decode: str = 'cpu'):
        super().__init__(data_root, on_bad_sample, image_size, decode=decode)
        self.ann_file = self.resolve(ann_file)
        self.gt_file = self.resolve(gt_file) if gt_file else None
        self.image_root = self.resolve(image_root)
        records = load_records(self.ann_file)
        check_records(self.ann_file, records, required={'image': TEXT, 'img_id': INTEGER},
                      kind='NoCaps')
        self.images = [record['image'] for record in records]
        self.image_ids = [record['img_id'] for record in records]
        self._check_ids()
        self._start_guard()

    def _check_ids(self) -> None:
        """Every id once, and (with ground truth) known to the ground truth."""
        known = {image['id'] for image in load_nocaps_ground_truth(self.gt_file)['images']} \
            if self.gt_file else None
        seen = set()
        for index, image_id in enumerate(self.image_ids):
            if image_id in seen:
                raise bad_sample(self.ann_file, f'img_id {image_id} appears twice.',
                                 'keep one record per image.', record_index=index)
            if known is not None and image_id not in known:
                raise bad_sample(self.ann_file, f'img_id {image_id} is not in {self.gt_file}.',
                                 'pass the ground truth of the same split as gt_file.',
                                 record_index=index)
            seen.add(image_id)
