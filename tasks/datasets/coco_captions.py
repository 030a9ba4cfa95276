"""The COCO caption format: reading a ``captions_*.json`` with checks, writing ground truth.

A COCO caption file is ``{"images": [{"id": int, "file_name": str, ...}], "annotations":
[{"image_id": int, "caption": str, "id": int, ...}]}``. The converter reads one
(:func:`read_coco_captions`); the converter and the caption reader (when it derives ground
truth from a Karpathy-style list) write one with :func:`coco_ground_truth`, so both produce
the same file for the same images and captions.
"""
import dataclasses
import pathlib
from collections.abc import Sequence

from .annotations import INTEGER, TEXT, check_records, load_json
from .errors import bad_sample



@dataclasses.dataclass
class CocoImage:
    """One image of a COCO caption file and its captions, in the file's order."""

    id: int
    file_name: str
    captions: list[str]


def coco_ground_truth(images: Sequence[dict], captions: Sequence[Sequence[str]]) -> dict:
    """COCO-format caption ground truth: ``images`` entries and, per entry, its captions.

    ``images[i]`` (a dict with an integer ``'id'``, kept as given) owns ``captions[i]``;
    annotations are numbered from 1 in that order, the order the metrics read them in.
    """
    annotations = [{'image_id': image['id'], 'caption': caption}
                   for image, texts in zip(images, captions, strict=True) for caption in texts]
    for number, annotation in enumerate(annotations, start=1):
        annotation['id'] = number
    return {'images': list(images), 'annotations': annotations}


def read_coco_captions(path: pathlib.Path) -> list[CocoImage]:
    """The images of a COCO caption file, each with its captions; BadSampleError if unusable.

    Checks: the top level holds lists ``images`` and ``annotations``; every image has an
    integer ``id`` (once) and a ``file_name``; every annotation has a ``caption`` and the
    ``image_id`` of a listed image; every image has at least one caption.
    """
    if not path.is_file():
        raise bad_sample(path, 'no such file.', 'pass the COCO caption file (e.g. '
                         'annotations/captions_val2017.json of COCO 2017) with --captions.')
    data = load_json(path)
    if not isinstance(data, dict) or not all(isinstance(data.get(key), list)
                                             for key in ('images', 'annotations')):
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise bad_sample(path, f"not a COCO caption file: it needs the lists 'images' and "
                         f"'annotations' (found {keys}).", 'pass a COCO captions_*.json '
                         '(e.g. annotations/captions_val2017.json of COCO 2017).')
    check_records(path, data['images'], required={'id': INTEGER, 'file_name': TEXT},
                  kind="COCO 'images'")
    check_records(path, data['annotations'], required={'image_id': INTEGER, 'caption': TEXT},
                  kind="COCO 'annotations'")
    images: dict[int, CocoImage] = {}
    for index, entry in enumerate(data['images']):
        if entry['id'] in images:
            raise bad_sample(path, f"images[{index}] repeats image id {entry['id']}.",
                             "give every entry of 'images' its own id.")
        images[entry['id']] = CocoImage(entry['id'], entry['file_name'], [])
    for index, annotation in enumerate(data['annotations']):
        image = images.get(annotation['image_id'])
        if image is None:
            raise bad_sample(path, f"annotations[{index}] refers to image id "
                             f"{annotation['image_id']}, which is not in 'images'.",
                             "add the image to 'images' or remove the annotation.")
        image.captions.append(annotation['caption'])
    bare = [image for image in images.values() if not image.captions]
    if bare:
        names = ', '.join(f'{image.id} ({image.file_name})' for image in bare[:5])
        raise bad_sample(path, f'{len(bare)} images have no caption, e.g. {names}.',
                         "add their captions to 'annotations' or remove them from 'images'.")
    return list(images.values())
