"""Decoded images kept in memory, for small data sets read many times (ToyWorld training).

A training epoch reads each image once per caption (five times on COCO-style files), and a
multi-variant experiment repeats the epochs per variant; on a tiny data set decoding is
then a large share of the CPU main job. :data:`DECODED_IMAGES` keeps decoded RGB images
for the whole process, up to a byte budget, dropping the least recently used first.

An entry is keyed by the file's path, modification time and size, so a file replaced on
disk is decoded again. Every read returns a copy, so a transform that changes its input
cannot change what later reads see; pixels are those :func:`read_image` gives, bit for bit.
A bad file is never kept: each read raises the same error as an uncached one.
"""
import collections
import os
import pathlib

from PIL import Image

from .media import read_image

DEFAULT_BUDGET_MB = 256
BUDGET_VARIABLE = 'HARNESS_IMAGE_CACHE_MB'


class DecodedImageCache:
    """Least-recently-used decoded images within ``budget_bytes`` of pixel data."""

    def __init__(self, budget_bytes: int):
        self.budget_bytes = budget_bytes
        self.used_bytes = 0
        self.hits = 0
        self.misses = 0
        self._images: collections.OrderedDict = collections.OrderedDict()

    def read(self, path: pathlib.Path, ann_file, record_index: int) -> Image.Image:
        """:func:`read_image` of ``path``, from memory when this version was read before."""
        try:
            status = path.stat()
        except OSError:
            return read_image(path, ann_file, record_index)  # raises its clear error
        key = (str(path), status.st_mtime_ns, status.st_size)
        image = self._images.get(key)
        if image is not None:
            self._images.move_to_end(key)
            self.hits += 1
            return image.copy()
        self.misses += 1
        image = read_image(path, ann_file, record_index)
        self._keep(key, image)
        return image.copy()

    def _keep(self, key, image: Image.Image) -> None:
        size = _pixel_bytes(image)
        if size > self.budget_bytes:
            return
        self._images[key] = image
        self.used_bytes += size
        while self.used_bytes > self.budget_bytes:
            _, dropped = self._images.popitem(last=False)
            self.used_bytes -= _pixel_bytes(dropped)


def _pixel_bytes(image: Image.Image) -> int:
    """Bytes of an 8-bit image's pixels (all the cache holds: RGB from :func:`read_image`)."""
    return len(image.getbands()) * image.width * image.height


DECODED_IMAGES = DecodedImageCache(
    int(float(os.environ.get(BUDGET_VARIABLE, DEFAULT_BUDGET_MB)) * 2 ** 20))
