"""Image-caption pairs for training: BLIP pre-training JSON and Karpathy/Flickr train files."""
import dataclasses
import pathlib
from typing import Optional, Sequence, Union

from harness.core.registry import DATASETS

from ..transforms import FINETUNE_CROP_SCALE, build_image_transform
from .annotations import IDENTIFIER, TEXT, check_records, cleaned_caption, load_records
from .base import AnnotationDataset, PathLike
from .image_cache import DECODED_IMAGES
from .media import read_image


@dataclasses.dataclass(frozen=True)
class _Pair:
    image: str
    caption: str
    image_index: int
    file_index: int
    record_index: int


@DATASETS.register_module()
class ImageTextPairDataset(AnnotationDataset):
    """One item per (image, caption) record, from one or several annotation files.

    Records are ``{"image": path, "caption": str}`` with an optional ``"image_id"`` (string or
    int, as in Karpathy/Flickr train files). ``image_id`` in items is the index of the
    distinct image: records sharing a file ``image_id`` (or, without one, the same image
    path) share it, which fine-tuning uses to treat all captions of an image as positives.

    Item: ``{'image': FloatTensor[3, S, S], 'text': str, 'image_id': int, 'index': int}``,
    ``text`` cleaned by :func:`tasks.text.pre_caption`; a caption that cleans to nothing makes
    the pair a bad sample.

    Args:
        data_root: folder the other paths are relative to (or a data source's name: 'toyworld').
        ann_file: one annotation file or a list of them (pre-training mixes several).
        image_size: output side S.
        image_root: folder the records' image paths are relative to (from data_root).
        max_words: caption length cap (BLIP: 30 for pre-training).
        train: random augmentation when True, eval resize when False.
        hflip: horizontal flip during training.
        crop_scale: RandomResizedCrop's area range during training; BLIP pre-trains with
            (0.2, 1.0) and fine-tunes with (0.5, 1.0).
        on_bad_sample: 'raise' or 'skip' (see :mod:`tasks.datasets.base`).
        preprocessing: the image backbone's ``mean``/``std``/``interpolation``; the training
            and evaluation stages fill it from the model (default: CLIP's, bicubic).
        cache_images: keep decoded images in memory for the whole process
            (:mod:`tasks.datasets.image_cache`): for small data sets read many times, such
            as ToyWorld; the pixels are the same either way.
    """

    def __init__(self, data_root: PathLike, ann_file: Union[PathLike, Sequence[PathLike]],
                 image_size: int = 224, image_root: PathLike = '', max_words: int = 30,
                 train: bool = True, hflip: bool = True,
                 crop_scale: Sequence[float] = FINETUNE_CROP_SCALE, on_bad_sample: str = 'raise',
                 preprocessing: Optional[dict] = None, cache_images: bool = False):
        super().__init__(data_root, on_bad_sample)
        self.read_image = DECODED_IMAGES.read if cache_images else read_image
        files = [ann_file] if isinstance(ann_file, (str, pathlib.PurePath)) else list(ann_file)
        self.ann_files = [self.resolve(f) for f in files]
        self.image_root = self.resolve(image_root)
        self.max_words = max_words
        self.transform = build_image_transform(image_size, train=train, hflip=hflip,
                                               crop_scale=crop_scale, preprocessing=preprocessing)
        self._pairs: list[_Pair] = []
        image_indices: dict[str, int] = {}
        for file_index, path in enumerate(self.ann_files):
            records = load_records(path)
            check_records(path, records, required={'image': TEXT, 'caption': TEXT},
                          optional={'image_id': IDENTIFIER}, kind='image-caption')
            for record_index, record in enumerate(records):
                key = str(record.get('image_id', record['image']))
                image_index = image_indices.setdefault(key, len(image_indices))
                self._pairs.append(_Pair(record['image'], record['caption'], image_index,
                                         file_index, record_index))
        self.num_images = len(image_indices)
        self._start_guard()

    def __len__(self) -> int:
        return len(self._pairs)

    def media_path(self, index: int) -> pathlib.Path:
        """The image file of pair ``index``."""
        return self.image_root / self._pairs[index].image

    def load_item(self, index: int) -> dict:
        """The transformed image, cleaned caption and image index of pair ``index``."""
        pair = self._pairs[index]
        ann_file = self.ann_files[pair.file_index]
        text = cleaned_caption(pair.caption, self.max_words, ann_file, pair.record_index)
        image = self.read_image(self.media_path(index), ann_file, pair.record_index)
        return {'image': self.transform(image), 'text': text, 'image_id': pair.image_index,
                'index': index}
