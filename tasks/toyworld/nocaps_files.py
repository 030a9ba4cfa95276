"""A NoCaps-format validation split: ToyWorld scenes with objects the captioner never saw.

Every ToyWorld training caption (COCO-format train, pre-training human and web texts) names
colours from :data:`~tasks.toyworld.scene.COLOURS`. NoCaps images may also hold objects in
the *held-out* colours :data:`HELD_OUT_COLOURS`, which no training caption contains:

* ``in-domain``: only seen kinds (an ordinary COCO-domain scene);
* ``near-domain``: seen and held-out kinds together (at least one of each);
* ``out-domain``: only held-out kinds.

Domains take turns (image ``i`` has domain ``i % 3``); there are as many images as in the
COCO test split (NoCaps val has 4,500 images, Karpathy test 5,000). The held-out words are
VQA annotators' answers, so they are already in ``vocab/vocab.txt``: the vocabulary, and
with it every token id, is the same as without this split. Scenes and captions come from
their own random streams (keys ``'nocaps'``), so every other ToyWorld file is unchanged.

Files (BLIP's and the official NoCaps formats)::

    annotations/nocaps_val.json      [{"image": path, "img_id": int}]
    annotations/nocaps_val_gt.json   {"images": [{"id", "file_name", "domain", ...}],
                                      "annotations": [{"image_id", "caption", "id"}]}
    images/toyworld_nocaps_val_<id>.png   ids 0..n-1, as NoCaps numbers its images
"""
import dataclasses
import pathlib

import numpy as np

from .captions import human_captions
from .images import image_path
from .jsonio import write_json
from .render import render_scene
from .scene import COLOURS, DOMAINS, SHAPES, Scene, sample_object, sample_scene
from .spec import ToyWorldSpec, random_stream

HELD_OUT_COLOURS = {'pink': (255, 105, 180), 'gold': (212, 175, 55)}
NOCAPS_DOMAINS = ('in-domain', 'near-domain', 'out-domain')
CAPTIONS_PER_IMAGE = 10  # as NoCaps
GROUP = 'nocaps_val'
VISUAL_DOMAIN = 'coco'
# The COCO look, able to paint held-out colours too.
_PALETTE_DOMAIN = dataclasses.replace(
    DOMAINS[VISUAL_DOMAIN], palette={**DOMAINS[VISUAL_DOMAIN].palette, **HELD_OUT_COLOURS})


def _kinds(colours, count: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    """``count`` distinct (shape, colour) pairs with colours from ``colours``."""
    pairs = [(shape, colour) for shape in SHAPES for colour in colours]
    return [pairs[i] for i in rng.choice(len(pairs), size=count, replace=False)]


def nocaps_scene(domain: str, rng: np.random.Generator) -> Scene:
    """A COCO-domain scene whose object kinds fit the NoCaps ``domain``.

    Layout, sizes and background come from :func:`~tasks.toyworld.scene.sample_scene`;
    near-domain scenes are redrawn until they hold two objects or more.
    """
    scene = sample_scene(rng, VISUAL_DOMAIN)
    if domain == 'in-domain':
        return scene
    while domain == 'near-domain' and len(scene.objects) < 2:
        scene = sample_scene(rng, VISUAL_DOMAIN)
    count = len(scene.objects)
    held_out = count if domain == 'out-domain' else int(rng.integers(1, count))
    kinds = _kinds(tuple(HELD_OUT_COLOURS), held_out, rng) + _kinds(COLOURS, count - held_out, rng)
    objects = tuple(sample_object(rng, _PALETTE_DOMAIN, shape, colour, obj.x, obj.y)
                    for (shape, colour), obj in zip(kinds, scene.objects))
    return dataclasses.replace(scene, objects=objects)


def _ground_truth(spec: ToyWorldSpec, entries: list[dict]) -> dict:
    annotations = []
    for entry in entries:
        for caption in entry['captions']:
            annotations.append({'image_id': entry['id'], 'caption': caption,
                                'id': len(annotations)})
    return {
        'info': {'description': f'ToyWorld NoCaps-format val captions (seed {spec.seed}); '
                 f'held-out colours {sorted(HELD_OUT_COLOURS)}', 'version': '1.0'},
        'licenses': [],
        'images': [{'id': e['id'], 'file_name': e['path'], 'width': spec.image_size,
                    'height': spec.image_size, 'domain': e['domain']} for e in entries],
        'annotations': annotations,
    }


def write_nocaps_files(spec: ToyWorldSpec, root: pathlib.Path) -> None:
    """Render the NoCaps val images and write BLIP's image list and the ground truth."""
    entries = []
    for index in range(spec.n_test):
        domain = NOCAPS_DOMAINS[index % len(NOCAPS_DOMAINS)]
        scene = nocaps_scene(domain, random_stream(spec.seed, 'nocaps', 'scene', index))
        path = image_path(GROUP, index)
        render_scene(scene, spec.image_size).save(root / path, format='PNG')
        captions = human_captions(scene, random_stream(spec.seed, 'nocaps', 'captions', index),
                                  CAPTIONS_PER_IMAGE)
        entries.append({'id': index, 'path': path, 'domain': domain, 'captions': captions})
    folder = root / 'annotations'
    write_json(folder / f'{GROUP}.json', [{'image': e['path'], 'img_id': e['id']}
                                          for e in entries])
    write_json(folder / f'{GROUP}_gt.json', _ground_truth(spec, entries))
