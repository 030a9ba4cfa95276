"""The still images of a ToyWorld: which groups exist, their ids, file names and scenes.

Every image gets a global integer id (1, 2, ... over all groups in :data:`GROUPS` order) and
the file ``images/toyworld_<group>_<id:06d>.png``. The id is recoverable from the file name
as the digits after the last underscore (``int(stem.split('_')[-1])``), the way BLIP derives
COCO ids from ``COCO_val2014_000000391895.jpg``; the COCO-format ground truth and VQA files
use that id.
"""
import dataclasses
import pathlib

from .render import render_scene
from .scene import Scene, sample_scene
from .spec import ToyWorldSpec, random_stream

IMAGE_FOLDER = 'images'


@dataclasses.dataclass(frozen=True)
class ImageGroup:
    """A set of images: name, the spec field holding its size, its visual domain."""

    name: str
    count_field: str
    domain: str


GROUPS = (
    ImageGroup('train', 'n_train', 'coco'),
    ImageGroup('val', 'n_val', 'coco'),
    ImageGroup('test', 'n_test', 'coco'),
    ImageGroup('flickr_train', 'n_flickr_train', 'flickr'),
    ImageGroup('flickr_val', 'n_flickr_val', 'flickr'),
    ImageGroup('flickr_test', 'n_flickr_test', 'flickr'),
    ImageGroup('web', 'n_web', 'coco'),
    ImageGroup('vqa_train', 'n_vqa_train', 'coco'),
    ImageGroup('vqa_val', 'n_vqa_val', 'coco'),
    ImageGroup('vqa_test', 'n_vqa_test', 'coco'),
)


@dataclasses.dataclass(frozen=True)
class ImageRecord:
    """One written image: group, global id, path relative to the data root, scene."""

    group: str
    image_id: int
    path: str
    scene: Scene


def image_path(group: str, image_id: int) -> str:
    """The data-root-relative file name of an image."""
    return f'{IMAGE_FOLDER}/toyworld_{group}_{image_id:06d}.png'


def make_images(spec: ToyWorldSpec, root: pathlib.Path) -> dict[str, list[ImageRecord]]:
    """Sample, render and save every still image; return the records by group."""
    (root / IMAGE_FOLDER).mkdir(parents=True, exist_ok=True)
    records: dict[str, list[ImageRecord]] = {}
    next_id = 1
    for group in GROUPS:
        records[group.name] = []
        for index in range(getattr(spec, group.count_field)):
            scene = sample_scene(random_stream(spec.seed, 'scene', group.name, index),
                                 group.domain)
            record = ImageRecord(group.name, next_id, image_path(group.name, next_id), scene)
            render_scene(scene, spec.image_size).save(root / record.path, format='PNG')
            records[group.name].append(record)
            next_id += 1
    return records
