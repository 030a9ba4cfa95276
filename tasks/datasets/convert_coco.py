"""Turn a COCO ``captions_*.json`` into BLIP's Karpathy-style annotation files.

    python -m tasks.datasets.convert_coco --captions captions_val2017.json \\
        --out annotations/ --split test --image-root val2017

``--split val`` / ``test`` writes ``<name>_<split>.json``, one ``{"image", "caption": [...]}``
record per image as in BLIP's ``coco_karpathy_test.json`` (plus an integer ``"image_id"``
when the file name does not end in the COCO id, so any file names work), and
``<name>_<split>_gt.json``, the COCO-format ground truth (``images`` ``[{"id",
"file_name"}]``, ``annotations`` ``[{"image_id", "caption", "id"}]``), the same file
:class:`~tasks.datasets.caption.CaptionEvalDataset` would derive from the list.
``--split train`` writes ``<name>_train.json``, one ``{"image", "caption", "image_id":
"<prefix><id>"}`` record per caption as in BLIP's ``coco_karpathy_train.json``. Image paths
are ``<image root>/<file_name>``; the default name ``coco_karpathy`` is the one the COCO
configs read.
"""
import argparse
import pathlib
import posixpath
from typing import Optional

from harness.core.files import atomic_write_json

from .caption import image_id_from_file_name
from .coco_captions import CocoImage, coco_ground_truth, read_coco_captions
from .errors import BadSampleError

SPLITS = ('train', 'val', 'test')


def _path(image: CocoImage, image_root: str) -> str:
    return posixpath.join(image_root, image.file_name) if image_root else image.file_name


def eval_records(images: list[CocoImage], image_root: str = '') -> list[dict]:
    """BLIP's val/test records; ``image_id`` only where the file name does not give it."""
    records = []
    for image in images:
        record = {'image': _path(image, image_root), 'caption': list(image.captions)}
        if image_id_from_file_name(record['image']) != image.id:
            record['image_id'] = image.id
        records.append(record)
    return records


def train_records(images: list[CocoImage], image_root: str = '',
                  id_prefix: str = 'coco_') -> list[dict]:
    """BLIP's train records: one per caption, ``image_id`` the string ``<prefix><id>``."""
    return [{'image': _path(image, image_root), 'caption': caption,
             'image_id': f'{id_prefix}{image.id}'}
            for image in images for caption in image.captions]


def convert(captions: pathlib.Path, out: pathlib.Path, split: str, image_root: str = '',
            name: str = 'coco_karpathy', id_prefix: str = 'coco_') -> list[pathlib.Path]:
    """Write the Karpathy-style file(s) of ``split`` from ``captions``; return their paths."""
    if split not in SPLITS:
        raise ValueError(f'split={split!r}: use one of {SPLITS}.')
    images = read_coco_captions(pathlib.Path(captions))
    out = pathlib.Path(out)
    records_file = out / f'{name}_{split}.json'
    if split == 'train':
        atomic_write_json(records_file, train_records(images, image_root, id_prefix))
        return [records_file]
    records = eval_records(images, image_root)
    gt_file = out / f'{name}_{split}_gt.json'
    atomic_write_json(records_file, records)
    atomic_write_json(gt_file, coco_ground_truth(
        [{'id': image.id, 'file_name': record['image']} for image, record in zip(images, records)],
        [image.captions for image in images]))
    return [records_file, gt_file]


def main(argv: Optional[list[str]] = None) -> None:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog='python -m tasks.datasets.convert_coco',
        description="Convert a COCO captions_*.json into BLIP's Karpathy-style files.")
    parser.add_argument('--captions', required=True, type=pathlib.Path,
                        help='the COCO caption file (images + annotations)')
    parser.add_argument('--out', required=True, type=pathlib.Path,
                        help='folder to write into (usually <data_root>/annotations)')
    parser.add_argument('--split', required=True, choices=SPLITS,
                        help='train: one record per caption; val/test: one per image + _gt.json')
    parser.add_argument('--image-root', default='',
                        help="folder prefixed to every file_name (relative to data_root), "
                             "e.g. val2017")
    parser.add_argument('--name', default='coco_karpathy',
                        help='file name prefix: <name>_<split>.json (default: coco_karpathy)')
    parser.add_argument('--id-prefix', default='coco_',
                        help='train image_id prefix (default: coco_, as in BLIP)')
    args = parser.parse_args(argv)
    try:
        written = convert(args.captions, args.out, args.split, args.image_root, args.name,
                          args.id_prefix)
    except BadSampleError as error:
        parser.error(str(error))
    for path in written:
        print(f'wrote {path}')


if __name__ == '__main__':
    main()
