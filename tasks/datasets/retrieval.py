"""Image-text retrieval evaluation sets: Karpathy COCO and Flickr30K val/test files."""
from typing import Optional

from harness.core.registry import DATASETS

from .annotations import TEXT, TEXTS, check_records, load_records
from .base import PathLike
from .eval_images import EvalImageDataset


@DATASETS.register_module()
class RetrievalEvalDataset(EvalImageDataset):
    """Images of a retrieval test set, with every caption flattened into ``texts``.

    Records are ``{"image": path, "caption": [str, ...]}``. Items are images:
    ``{'image': FloatTensor[3, S, S], 'image_index': int}`` (with ``decode='device'``, the
    image's encoded file instead: :mod:`tasks.datasets.eval_images`). Attributes: ``texts``
    (cleaned captions), ``txt2img`` (image index of each text), ``img2txt`` (text indices of
    each image), ``record_indices`` (the file record of each image). A caption that cleans
    to nothing is a bad sample (see :meth:`AnnotationDataset._reference`).

    Args:
        data_root: folder the other paths are relative to (or a data source's name: 'toyworld').
        ann_file: the annotation file.
        image_size: output side S.
        image_root: folder the records' image paths are relative to (from data_root).
        max_words: caption length cap in words (BLIP: 30; its token limit is 35).
        on_bad_sample: 'raise' or 'skip' (see :mod:`tasks.datasets.base`).
        preprocessing: the image backbone's ``mean``/``std``/``interpolation``; the training
            and evaluation stages fill it from the model (default: CLIP's, bicubic).
        decode: ``'cpu'`` (default) or ``'device'``: where images are decoded and resized.
    """

    def __init__(self, data_root: PathLike, ann_file: PathLike, image_size: int = 384,
                 image_root: PathLike = '', max_words: int = 30, on_bad_sample: str = 'raise',
                 preprocessing: Optional[dict] = None, decode: str = 'cpu'):
        super().__init__(data_root, on_bad_sample, image_size, preprocessing, decode)
        self.ann_file = self.resolve(ann_file)
        self.image_root = self.resolve(image_root)
        records = load_records(self.ann_file)
        check_records(self.ann_file, records, required={'image': TEXT, 'caption': TEXTS},
                      kind='retrieval evaluation')
        self.images, self.record_indices = [], []
        self.texts, self.txt2img, self.img2txt = [], [], []
        for record_index, record in enumerate(records):
            texts = [self._reference(caption, max_words, self.ann_file, record_index)
                     for caption in record['caption']]
            texts = [text for text in texts if text is not None]
            if not texts:
                continue
            self.img2txt.append(list(range(len(self.texts), len(self.texts) + len(texts))))
            self.txt2img += [len(self.images)] * len(texts)
            self.texts += texts
            self.images.append(record['image'])
            self.record_indices.append(record_index)
        self._start_guard()

    def limit(self, count: int) -> 'RetrievalEvalDataset':
        """Keep the first ``count`` images and only their texts (texts follow image order)."""
        self.img2txt = self.img2txt[:count]
        kept_texts = sum(len(indices) for indices in self.img2txt)
        self.texts, self.txt2img = self.texts[:kept_texts], self.txt2img[:kept_texts]
        return super().limit(count)

    def load_item(self, index: int) -> dict:
        """The image ``index`` (transformed, or encoded with ``decode='device'``)."""
        return {'image': self.eval_image(index, self.record_indices[index]),
                'image_index': index}
