"""The noisy "web" pre-training corpus and its side file of noise labels.

A known share of pairs (``web_noise_fraction``) gets a wrong caption: ``mismatched`` (another
image's caption, naming different objects), ``attribute_swap`` (one object's colour or shape
changed) or ``generic`` (uninformative alt text). ``pretrain_web_noise_labels.json`` records
each pair's label for measuring CapFilt's filter; no training code may read it.
"""
import dataclasses
import pathlib

import numpy as np

from ..datasets.tar_shards import json_member, write_shard
from .captions import web_caption
from .images import ImageRecord
from .jsonio import write_json
from .phrases import pick
from .scene import COLOURS, SHAPES, Scene, sample_scene
from .spec import ToyWorldSpec, random_stream

NOISE_SHARES = {'mismatched': 0.4, 'attribute_swap': 0.4, 'generic': 0.2}
WEB_SHARD_FOLDER = 'web_shards'
GENERIC_CAPTIONS = (
    'a picture', 'image for sale', 'photo', 'untitled', 'stock photo', 'download this image',
    'high resolution image', 'click to enlarge', 'my new wallpaper', 'product image',
    'image may contain shapes', 'view full size', 'free download', 'best seller', 'see more')


def _kinds(scene: Scene) -> set[tuple[str, str]]:
    return {(o.colour, o.shape) for o in scene.objects}


def _swap_attribute(scene: Scene, rng: np.random.Generator) -> Scene:
    """The scene with one object's colour or shape replaced by one it does not have."""
    index = int(rng.integers(len(scene.objects)))
    obj = scene.objects[index]
    taken = _kinds(scene)
    if rng.random() < 0.5:
        options = [c for c in COLOURS if c != obj.colour and (c, obj.shape) not in taken]
        swapped = dataclasses.replace(obj, colour=pick(rng, options))
    else:
        options = [s for s in SHAPES if s != obj.shape and (obj.colour, s) not in taken]
        swapped = dataclasses.replace(obj, shape=pick(rng, options))
    objects = scene.objects[:index] + (swapped,) + scene.objects[index + 1:]
    return dataclasses.replace(scene, objects=objects)


def _noise_labels(count: int, fraction: float, rng: np.random.Generator) -> list[str]:
    """Exactly ``round(count * fraction)`` noisy labels, split by :data:`NOISE_SHARES`."""
    noisy = int(round(count * fraction))
    mismatched = int(round(noisy * NOISE_SHARES['mismatched']))
    swapped = int(round(noisy * NOISE_SHARES['attribute_swap']))
    labels = (['mismatched'] * mismatched + ['attribute_swap'] * swapped
              + ['generic'] * (noisy - mismatched - swapped) + ['clean'] * (count - noisy))
    return [labels[i] for i in rng.permutation(count)]


def _mismatched_caption(images: list[ImageRecord], kinds: list[set], index: int, rng) -> str:
    """The web caption of another image showing other objects."""
    own = kinds[index]
    others = [image.scene for image, other in zip(images, kinds) if other != own]
    while not others:  # only in a corpus of one image or of identical ones
        candidate = sample_scene(rng, images[index].scene.domain)
        others = [candidate] if _kinds(candidate) != own else []
    return web_caption(others[int(rng.integers(len(others)))], rng)


def write_web_shards(root: pathlib.Path, images: list[ImageRecord], captions: list[str],
                     shard_size: int) -> None:
    """The web pairs, in order, as ``web_shards/NNNNN.tar`` (img2dataset's layout: per
    sample ``key.png``, ``key.txt``, ``key.json`` with ``url`` = the image's data-root path)."""
    for shard, start in enumerate(range(0, len(images), shard_size)):
        samples = []
        for index in range(start, min(start + shard_size, len(images))):
            key = f'{index:09d}'
            meta = dict(key=key, url=images[index].path, caption=captions[index])
            samples.append((key, {'png': (root / images[index].path).read_bytes(),
                                  'txt': captions[index].encode(), 'json': json_member(meta)}))
        write_shard(root / WEB_SHARD_FOLDER / f'{shard:05d}.tar', samples)


def write_web_corpus(spec: ToyWorldSpec, root: pathlib.Path,
                     images: list[ImageRecord]) -> list[str]:
    """Write ``pretrain_web.json`` and its noise labels (and, with ``web_format='webdataset'``,
    the same pairs as shards); return the captions written."""
    rng = random_stream(spec.seed, 'web')
    labels = _noise_labels(len(images), spec.web_noise_fraction, rng)
    kinds = [_kinds(image.scene) for image in images]
    captions = []
    for index, (image, label) in enumerate(zip(images, labels)):
        if label == 'clean':
            captions.append(web_caption(image.scene, rng))
        elif label == 'attribute_swap':
            captions.append(web_caption(_swap_attribute(image.scene, rng), rng))
        elif label == 'mismatched':
            captions.append(_mismatched_caption(images, kinds, index, rng))
        else:
            captions.append(pick(rng, GENERIC_CAPTIONS))
    folder = root / 'annotations'
    write_json(folder / 'pretrain_web.json',
               [{'image': image.path, 'caption': caption}
                for image, caption in zip(images, captions)])
    write_json(folder / 'pretrain_web_noise_labels.json',
               [{'image': image.path, 'caption': caption, 'label': label}
                for image, caption, label in zip(images, captions, labels)])
    if spec.web_format == 'webdataset':
        write_web_shards(root, images, captions, spec.web_shard_size)
    return captions + list(GENERIC_CAPTIONS)
