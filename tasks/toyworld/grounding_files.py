"""Object boxes of the test images, for pointing games (``annotations/grounding_test.json``).

One record per test image: ``{image, image_id, width, height, objects: [{phrase, box,
shape, colour, size}]}``, where ``phrase`` names the object by colour and shape (``'red
circle'``; unique within an image, whose objects are distinct colour+shape pairs) and
``box`` is ``[x0, y0, x1, y1]`` in pixels of the written image: the drawn shape's bounding
box, cut at the image's edges. The file adds no word to the vocabulary: every phrase's words
are in the captions.
"""
import pathlib

from .caption_files import ANNOTATION_FOLDER
from .images import ImageRecord
from .jsonio import write_json
from .render import object_box
from .spec import ToyWorldSpec

GROUNDING_FILE = f'{ANNOTATION_FOLDER}/grounding_test.json'


def grounding_records(spec: ToyWorldSpec, images: list[ImageRecord]) -> list[dict]:
    """The records of :data:`GROUNDING_FILE` for ``images``."""
    size = spec.image_size
    return [{'image': image.path, 'image_id': image.image_id, 'width': size, 'height': size,
             'objects': [{'phrase': f'{obj.colour} {obj.shape}',
                          'box': [round(min(max(value, 0.0), 1.0) * size, 3)
                                  for value in object_box(obj)],
                          'shape': obj.shape, 'colour': obj.colour, 'size': obj.size}
                         for obj in image.scene.objects]}
            for image in images]


def write_grounding_file(spec: ToyWorldSpec, root: pathlib.Path,
                         images: dict[str, list[ImageRecord]]) -> None:
    """Write :data:`GROUNDING_FILE` for the COCO-domain test images."""
    write_json(root / GROUNDING_FILE, grounding_records(spec, images['test']))
