"""Evaluation image lists whose images are decoded on the CPU, or (opt-in) where the model runs.

``decode='cpu'`` (default): PIL decodes and BLIP's eval transform resizes and normalises in
the DataLoader workers; items hold ``FloatTensor[3, S, S]``. ``decode='device'``: items
hold the file's bytes (:class:`.device_decode.EncodedImage`), :meth:`collate_fn` batches
them with the model's image format, and the evaluation loops decode each batch on the
model's device (:func:`.device_decode.images_on_device`), so the CPU no longer limits a
real-size evaluation. The two paths agree to a few 8-bit levels per pixel, not bit for
bit (see :mod:`.device_decode`).

Bad samples under ``decode='device'``: a missing or empty file is found when the item is
read; a file that does not decode raises a :class:`BadSampleError` naming it when its batch
is decoded, after batching, where nothing can be skipped; so ``on_bad_sample='skip'`` is
refused with it.
"""
from typing import Optional, Union

import torch
from torch.utils.data import default_collate

from ..transforms import build_image_transform, resolved_preprocessing
from .base import ImageListDataset, PathLike
from .device_decode import EncodedImage, EncodedImages, ModelImageFormat
from .media import read_encoded, read_image

DECODE_MODES = ('cpu', 'device')


class EvalImageDataset(ImageListDataset):
    """An :class:`ImageListDataset` for evaluation: images at the model's size and statistics.

    Args:
        data_root: folder the other paths are relative to (or a data source's name).
        on_bad_sample: 'raise' or 'skip' (see :mod:`tasks.datasets.base`); only 'raise'
            with ``decode='device'``.
        image_size: output side S.
        preprocessing: the image backbone's ``mean``/``std``/``interpolation`` (default:
            CLIP's, bicubic).
        decode: ``'cpu'`` (PIL, in the workers) or ``'device'`` (see the module docstring).

    Subclasses set ``ann_file`` and ``image_root`` and build items with :meth:`eval_image`.
    """

    def __init__(self, data_root: PathLike, on_bad_sample: str = 'raise',
                 image_size: int = 384, preprocessing: Optional[dict] = None,
                 decode: str = 'cpu'):
        if decode not in DECODE_MODES:
            raise ValueError(f'decode={decode!r}: use one of {DECODE_MODES}')
        if decode == 'device' and on_bad_sample == 'skip':
            raise ValueError("decode='device' decodes images after batching, where a bad file "
                             "cannot be skipped: use on_bad_sample='raise' (a bad file then "
                             "stops the evaluation, named) or decode='cpu'")
        super().__init__(data_root, on_bad_sample)
        self.decode = decode
        self.transform = build_image_transform(image_size, train=False,
                                               preprocessing=preprocessing)
        pixels = resolved_preprocessing(preprocessing)
        self.image_format = ModelImageFormat(image_size, tuple(pixels['mean']),
                                             tuple(pixels['std']), pixels['interpolation']) \
            if decode == 'device' else None

    def eval_image(self, index: int, record_index: int) -> Union[torch.Tensor, EncodedImage]:
        """Image ``index`` as model input (``decode='cpu'``) or as its encoded file."""
        path = self.media_path(index)
        if self.decode == 'cpu':
            return self.transform(read_image(path, self.ann_file, record_index))
        return EncodedImage(read_encoded(path, self.ann_file, record_index), str(path),
                            str(self.ann_file), record_index)

    def collate_fn(self, items: list) -> dict:
        """A batch of items: encoded images as :class:`EncodedImages`, the rest collated."""
        if self.decode == 'cpu':
            return default_collate(items)
        batch = default_collate([{key: value for key, value in item.items() if key != 'image'}
                                 for item in items])
        batch['image'] = EncodedImages([item['image'] for item in items], self.image_format)
        return batch
