"""COCO-Karpathy, COCO ground-truth and Flickr30K caption files, plus ``pretrain_human.json``.

Schemas follow BLIP's annotation files: train files hold one ``{image, caption, image_id}``
record per caption (``image_id`` a string, ``coco_<id>`` for COCO); val/test files hold one
``{image, caption: [5 captions]}`` record per image; ``*_gt.json`` is COCO caption format with
integer image ids (the id in the image file name).
"""
import pathlib

from .captions import human_captions
from .images import ImageRecord
from .jsonio import write_json
from .spec import ToyWorldSpec, random_stream

ANNOTATION_FOLDER = 'annotations'


def _captions_by_image(spec: ToyWorldSpec, images: list[ImageRecord]) -> list[list[str]]:
    return [human_captions(image.scene, random_stream(spec.seed, 'captions', image.group, i),
                           spec.captions_per_image)
            for i, image in enumerate(images)]


def _train_records(images, captions, id_prefix: str) -> list[dict]:
    return [{'image': image.path, 'caption': caption, 'image_id': f'{id_prefix}{image.image_id}'}
            for image, texts in zip(images, captions) for caption in texts]


def _eval_records(images, captions) -> list[dict]:
    return [{'image': image.path, 'caption': texts} for image, texts in zip(images, captions)]


def _coco_ground_truth(spec: ToyWorldSpec, images, captions, split: str) -> dict:
    annotations = []
    for image, texts in zip(images, captions):
        for caption in texts:
            annotations.append({'image_id': image.image_id, 'caption': caption,
                                'id': len(annotations) + 1})
    return {
        'info': {'description': f'ToyWorld COCO-Karpathy {split} captions (seed {spec.seed})',
                 'version': '1.0'},
        'licenses': [],
        'type': 'captions',
        'images': [{'id': image.image_id, 'file_name': image.path, 'width': spec.image_size,
                    'height': spec.image_size} for image in images],
        'annotations': annotations,
    }


def write_caption_files(spec: ToyWorldSpec, root: pathlib.Path,
                        images: dict[str, list[ImageRecord]]) -> list[str]:
    """Write every human-caption file; return all captions written (for the vocabulary)."""
    folder = root / ANNOTATION_FOLDER
    captions = {group: _captions_by_image(spec, images[group])
                for group in ('train', 'val', 'test', 'flickr_train', 'flickr_val',
                              'flickr_test')}
    coco_train = _train_records(images['train'], captions['train'], 'coco_')
    write_json(folder / 'coco_karpathy_train.json', coco_train)
    write_json(folder / 'pretrain_human.json',
               [{'image': r['image'], 'caption': r['caption']} for r in coco_train])
    for split in ('val', 'test'):
        write_json(folder / f'coco_karpathy_{split}.json',
                   _eval_records(images[split], captions[split]))
        write_json(folder / f'coco_karpathy_{split}_gt.json',
                   _coco_ground_truth(spec, images[split], captions[split], split))
    write_json(folder / 'flickr30k_train.json',
               _train_records(images['flickr_train'], captions['flickr_train'], ''))
    for split in ('val', 'test'):
        group = f'flickr_{split}'
        write_json(folder / f'flickr30k_{split}.json',
                   _eval_records(images[group], captions[group]))
    return [caption for per_image in captions.values() for texts in per_image
            for caption in texts]
