"""The distinct images of a web (alt-text) corpus, which CapFilt captions and filters."""
from typing import List

from harness.core.registry import DATASETS

from ..datasets.annotations import TEXT, check_records, load_records
from ..datasets.base import ImageListDataset, PathLike
from ..datasets.media import read_image
from ..transforms import build_image_transform


@DATASETS.register_module()
class WebImageDataset(ImageListDataset):
    """One item per distinct image of a BLIP pre-training ``{image, caption}`` file.

    CapFilt writes one synthetic caption per web *image* and scores every web *text* of
    it, so items are images (in order of first appearance) and :attr:`texts_of_image`
    lists each image's records. A bad image always raises: skipping it would attach a
    caption to the wrong image.

    Item: ``{'image': FloatTensor[3, S, S] (eval transform), 'index': int}``.

    Args:
        data_root: folder the other paths are relative to (or a data source's name: 'toyworld').
        ann_file: the web corpus (``annotations/pretrain_web.json`` in ToyWorld).
        image_size: output side S.
        image_root: folder the records' image paths are relative to (from data_root).
    """

    def __init__(self, data_root: PathLike, ann_file: PathLike, image_size: int = 384,
                 image_root: PathLike = ''):
        super().__init__(data_root, on_bad_sample='raise')
        self.ann_file = self.resolve(ann_file)
        self.image_root = self.resolve(image_root)
        self.transform = build_image_transform(image_size, train=False)
        self.records: List[dict] = load_records(self.ann_file)
        check_records(self.ann_file, self.records, required={'image': TEXT, 'caption': TEXT},
                      kind='web image-caption')
        positions: dict = {}
        self.images: List[str] = []
        self.texts_of_image: List[List[int]] = []
        for record_index, record in enumerate(self.records):
            position = positions.setdefault(record['image'], len(self.images))
            if position == len(self.images):
                self.images.append(record['image'])
                self.texts_of_image.append([])
            self.texts_of_image[position].append(record_index)
        self._start_guard()

    def load_item(self, index: int) -> dict:
        """The eval-transformed image ``index``."""
        first_record = self.texts_of_image[index][0]
        image = read_image(self.media_path(index), self.ann_file, first_record)
        return {'image': self.transform(image), 'index': index}
