"""Decoded-image cache: same pixels as reading the file, copies out, bounded, never stale."""
import os
import pathlib

import numpy as np
import pytest
import torch
from PIL import Image

from tasks.datasets import BadSampleError, ImageTextPairDataset
from tasks.datasets.image_cache import DecodedImageCache
from tasks.datasets.media import read_image


def _png(path: pathlib.Path, value: int, side: int = 8) -> pathlib.Path:
    Image.fromarray(np.full((side, side, 3), value, dtype=np.uint8)).save(path)
    return path


def test_a_second_read_is_a_copy_of_the_same_pixels(tmp_path):
    path = _png(tmp_path / 'a.png', 40)
    cache = DecodedImageCache(budget_bytes=10_000)
    first = cache.read(path, 'ann.json', 0)
    first.paste((255, 0, 0), (0, 0, 8, 8))  # a transform that edits its input in place
    second = cache.read(path, 'ann.json', 0)
    assert (cache.hits, cache.misses) == (1, 1)
    assert np.array_equal(np.asarray(second), np.asarray(read_image(path, 'ann.json', 0)))


def test_a_replaced_file_is_decoded_again(tmp_path):
    path = _png(tmp_path / 'a.png', 40)
    cache = DecodedImageCache(budget_bytes=10_000)
    cache.read(path, 'ann.json', 0)
    _png(path, 200, side=9)  # another size, so another key even within one mtime tick
    assert np.asarray(cache.read(path, 'ann.json', 0))[0, 0, 0] == 200
    assert cache.misses == 2


def test_the_least_recently_used_image_leaves_first_within_the_budget(tmp_path):
    paths = [_png(tmp_path / f'{i}.png', i) for i in range(3)]  # 192 bytes each
    cache = DecodedImageCache(budget_bytes=400)
    cache.read(paths[0], 'a', 0)
    cache.read(paths[1], 'a', 1)
    cache.read(paths[0], 'a', 0)  # 0 is now the most recent
    cache.read(paths[2], 'a', 2)  # evicts 1
    assert cache.used_bytes == 384
    cache.read(paths[0], 'a', 0)
    cache.read(paths[1], 'a', 1)
    assert (cache.hits, cache.misses) == (2, 4)
    big = _png(tmp_path / 'big.png', 9, side=20)  # larger than the whole budget: not kept
    cache.read(big, 'a', 3)
    assert cache.used_bytes <= 400


def test_bad_or_missing_files_raise_every_time(tmp_path):
    bad = tmp_path / 'bad.png'
    bad.write_bytes(b'not an image')
    cache = DecodedImageCache(budget_bytes=10_000)
    for path, words in ((bad, 'corrupt'), (tmp_path / 'gone.png', 'does not exist')):
        for _ in range(2):
            with pytest.raises(BadSampleError, match=words):
                cache.read(path, 'ann.json', 7)
    assert cache.used_bytes == 0


def test_cached_dataset_items_equal_uncached_ones(tiny_toyworld):
    def items(cache_images):
        dataset = ImageTextPairDataset(tiny_toyworld, 'annotations/coco_karpathy_train.json',
                                       image_size=32, cache_images=cache_images)
        torch.manual_seed(3)
        return [dataset[i % 4] for i in range(12)]  # each image read three times

    for cached, plain in zip(items(True), items(False)):
        assert torch.equal(cached['image'], plain['image'])
        assert cached['text'] == plain['text']


def test_budget_comes_from_the_environment(monkeypatch):
    import importlib

    import tasks.datasets.image_cache as image_cache
    monkeypatch.setenv(image_cache.BUDGET_VARIABLE, '1.5')
    try:
        assert importlib.reload(image_cache).DECODED_IMAGES.budget_bytes == int(1.5 * 2 ** 20)
    finally:
        monkeypatch.delenv(image_cache.BUDGET_VARIABLE)
        importlib.reload(image_cache)
    assert os.environ.get(image_cache.BUDGET_VARIABLE) is None
