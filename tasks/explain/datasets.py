"""What the explain tasks read: images with object boxes (pointing game) or with texts."""
import pathlib
from typing import Optional, Sequence

from harness.core.registry import DATASETS

from ..datasets.annotations import load_json
from ..datasets.base import ImageListDataset, PathLike
from ..datasets.errors import bad_sample
from ..datasets.media import read_image
from ..transforms import build_image_transform


@DATASETS.register_module()
class GroundingDataset(ImageListDataset):
    """Images whose objects have phrases and boxes (ToyWorld's ``grounding_test.json``).

    Records: ``{image, image_id, width, height, objects: [{phrase, box: [x0, y0, x1, y1]
    pixels}]}``. Items: ``{'image': FloatTensor[3, S, S], 'image_id': int, 'index': int}``;
    ``objects[index]`` lists ``{'phrase', 'box'}`` with boxes in [0, 1] image coordinates.
    """

    per_image_fields = ('images', 'image_ids', 'objects')

    def __init__(self, data_root: PathLike, ann_file: PathLike = 'annotations/grounding_test.json',
                 image_size: int = 384, preprocessing: Optional[dict] = None):
        super().__init__(data_root)
        self.ann_file = self.resolve(ann_file)
        self.image_root = self.data_root
        self.transform = build_image_transform(image_size, train=False,
                                               preprocessing=preprocessing)
        records = load_json(self.ann_file)
        self.images, self.image_ids, self.objects = [], [], []
        for index, record in enumerate(records):
            try:
                width, height = float(record['width']), float(record['height'])
                objects = [{'phrase': str(obj['phrase']),
                            'box': [obj['box'][0] / width, obj['box'][1] / height,
                                    obj['box'][2] / width, obj['box'][3] / height]}
                           for obj in record['objects']]
                self.images.append(str(record['image']))
                self.image_ids.append(int(record['image_id']))
            except (KeyError, TypeError, IndexError, ValueError) as error:
                raise bad_sample(self.ann_file, f'a grounding record is malformed ({error!r}).',
                                 'give every record image, image_id, width, height and '
                                 'objects [{phrase, box: [x0, y0, x1, y1]}].',
                                 record_index=index) from error
            self.objects.append(objects)
        self._start_guard()

    def load_item(self, index: int) -> dict:
        """The transformed image ``index``, its id and its index (for ``objects``)."""
        image = read_image(self.media_path(index), self.ann_file, index)
        return {'image': self.transform(image), 'image_id': self.image_ids[index],
                'index': index}


@DATASETS.register_module()
class ExplainImages(ImageListDataset):
    """Image files to explain, each with an optional text (ITM Grad-CAM; '' for none).

    Items: ``{'image': FloatTensor[3, S, S], 'image_id': int (position), 'text': str}``.
    """

    per_image_fields = ('images', 'texts')

    def __init__(self, images: Sequence[PathLike], texts: Optional[Sequence[str]] = None,
                 data_root: PathLike = '.', image_size: int = 384,
                 preprocessing: Optional[dict] = None):
        super().__init__(data_root)
        texts = list(texts) if texts is not None else [''] * len(images)
        if len(texts) != len(images):
            raise ValueError(f'ExplainImages: {len(images)} images but {len(texts)} texts; give '
                             f'one text per image ("" for none)')
        self.images = [str(image) for image in images]
        self.texts = texts
        self.image_root = self.data_root
        self.ann_file = pathlib.Path('<explain images>')
        self.transform = build_image_transform(image_size, train=False,
                                               preprocessing=preprocessing)
        self._start_guard()

    def load_item(self, index: int) -> dict:
        """The transformed image ``index`` with its text."""
        image = read_image(self.media_path(index), self.ann_file, index)
        return {'image': self.transform(image), 'image_id': index, 'text': self.texts[index]}
