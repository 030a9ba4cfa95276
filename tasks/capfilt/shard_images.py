"""The images of a web corpus kept as WebDataset tar shards, for CapFilt to caption and filter."""
import json
from typing import List

from mmengine.logging import print_log

from harness.core.registry import DATASETS

from ..datasets.base import ImageListDataset, PathLike
from ..datasets.media import decode_image
from ..datasets.tar_shards import image_field, index_members, read_member, resolve_shards
from ..transforms import build_image_transform


@DATASETS.register_module()
class WebShardImageDataset(ImageListDataset):
    """One item per sample of WebDataset/img2dataset shards, read by index from the tars.

    The CapFilt stages take it where they take a :class:`.web_images.WebImageDataset`:
    ``images`` names each sample's image (its ``json`` member's ``url``, else
    ``<shard>/<key>``), ``records`` holds its ``{image, caption}`` (``txt`` member, else the
    ``json`` member's ``caption``), every image has its one text, and ``shard_sizes`` makes
    the caption and filter tasks work (and resume) one input shard at a time. Samples
    without an image or caption member are left out and logged; a bad image raises (as
    the JSON reader's), since its caption would go to the wrong image otherwise.

    Item: ``{'image': FloatTensor[3, S, S] (eval transform), 'index': int}``.

    Args:
        data_root: folder relative shard names start from (or a data source: 'toyworld').
        shards: a brace pattern, a glob, or a list of them (see :mod:`..datasets.tar_shards`).
        image_size: output side S.
    """

    per_image_fields = ('images', 'records', 'members')

    def __init__(self, data_root: PathLike, shards, image_size: int = 384):
        super().__init__(data_root, on_bad_sample='raise')
        self.shards = resolve_shards(shards, self.data_root)
        self.transform = build_image_transform(image_size, train=False)
        self.images: List[str] = []
        self.records: List[dict] = []
        self.members: List[tuple] = []  # (shard, key, image field, offset, size)
        self.shard_sizes: List[int] = []
        skipped = 0
        for shard, path in enumerate(self.shards):
            before = len(self.images)
            for key, fields in index_members(path):
                caption, ext = self._caption(path, fields), image_field(fields)
                if ext is None or not caption:
                    skipped += 1
                    continue
                meta = json.loads(read_member(path, *fields['json'])) if 'json' in fields else {}
                image = meta.get('url') or f'{path.name}/{key}'
                self.images.append(image)
                self.records.append(dict(image=image, caption=caption))
                self.members.append((shard, key, ext) + fields[ext])
            self.shard_sizes.append(len(self.images) - before)
        if skipped:
            print_log(f'WebShardImageDataset: left out {skipped} samples without an image or '
                      f'a caption member in {self.shards[0].parent}', logger='current')
        self.image_root = self.data_root
        self._start_guard()

    @staticmethod
    def _caption(path, fields: dict) -> str:
        """A sample's caption: its ``txt`` member, else its ``json`` member's ``caption``."""
        if 'txt' in fields:
            return read_member(path, *fields['txt']).decode('utf-8', 'replace').strip()
        if 'json' in fields:
            return str(json.loads(read_member(path, *fields['json'])).get('caption') or '')
        return ''

    @property
    def texts_of_image(self) -> List[List[int]]:
        """The web records of each image: its own sample's one text."""
        return [[index] for index in range(len(self.images))]

    def image_bytes(self, index: int) -> tuple:
        """``(field, encoded bytes)`` of sample ``index``'s image member."""
        shard, _, ext, offset, size = self.members[index]
        return ext, read_member(self.shards[shard], offset, size)

    def media_path(self, index: int):
        """The shard holding sample ``index`` (for reports)."""
        return self.shards[self.members[index][0]]

    def load_item(self, index: int) -> dict:
        """The eval-transformed image ``index``."""
        shard, key, ext, _, _ = self.members[index]
        _, data = self.image_bytes(index)
        image = decode_image(data, self.shards[shard], index, media=f'{self.shards[shard]}:'
                             f'{key}.{ext}')
        return {'image': self.transform(image), 'index': index}
