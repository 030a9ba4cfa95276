"""Your own caption data: COCO captions → Karpathy-style files → evaluation, ids honoured."""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tasks.caption import evaluate_caption
from tasks.caption.evaluate import score_predictions
from tasks.datasets import BadSampleError, CaptionEvalDataset
from tasks.datasets.caption import derived_gt_folder, image_id_from_text
from tasks.datasets.convert_coco import convert
from tasks.metrics.caption import load_coco_references
from tests.test_caption_eval import build_model

REPO = pathlib.Path(__file__).resolve().parents[1]
# The README's "Your own captions" example: three photos, COCO caption format.
README_CAPTIONS = {
    'images': [{'id': 1, 'file_name': 'cat.jpg'}, {'id': 2, 'file_name': 'dog.jpg'},
               {'id': 3, 'file_name': 'boat.jpg'}],
    'annotations': [
        {'id': 1, 'image_id': 1, 'caption': 'A cat sleeps on a red sofa.'},
        {'id': 2, 'image_id': 1, 'caption': 'A grey cat curled up on a couch.'},
        {'id': 3, 'image_id': 2, 'caption': 'A dog runs across the grass.'},
        {'id': 4, 'image_id': 2, 'caption': 'A brown dog playing in a park.'},
        {'id': 5, 'image_id': 3, 'caption': 'A small boat on a calm lake.'},
        {'id': 6, 'image_id': 3, 'caption': 'A rowing boat near the shore.'}]}


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Derived ground truths go to this test's folder, not the user's cache."""
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))


def _write_images(folder: pathlib.Path, names) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / name)


def _write_json(path: pathlib.Path, payload) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))
    return path


def test_readme_walkthrough_converts_and_evaluates_against_derived_ground_truth(
        tiny_toyworld, tmp_path):
    root = tmp_path / 'my_data'
    _write_images(root / 'photos', ['cat.jpg', 'dog.jpg', 'boat.jpg'])
    captions = _write_json(root / 'captions.json', README_CAPTIONS)
    done = subprocess.run(
        [sys.executable, '-m', 'tasks.datasets.convert_coco', '--captions', str(captions),
         '--out', str(root / 'annotations'), '--split', 'test', '--image-root', 'photos'],
        cwd=REPO, capture_output=True, text=True, env=dict(os.environ, PYTHONHASHSEED='0'))
    assert done.returncode == 0, done.stderr
    records = json.loads((root / 'annotations/coco_karpathy_test.json').read_text())
    assert records[0] == {'image': 'photos/cat.jpg', 'image_id': 1,
                          'caption': ['A cat sleeps on a red sofa.',
                                      'A grey cat curled up on a couch.']}
    gt_file = root / 'annotations/coco_karpathy_test_gt.json'
    converted_gt = json.loads(gt_file.read_text())
    with_gt = CaptionEvalDataset(root, 'annotations/coco_karpathy_test.json', image_size=32)
    assert with_gt.gt_file == gt_file and with_gt.image_ids == [1, 2, 3]

    kept_gt = gt_file.rename(tmp_path / 'converted_gt.json')  # now the list is all there is
    dataset = CaptionEvalDataset(root, 'annotations/coco_karpathy_test.json', image_size=32)
    assert dataset.gt_file.parent == derived_gt_folder()
    assert json.loads(dataset.gt_file.read_text()) == converted_gt  # the same file, derived

    settings = dict(batch_size=2, metrics=('BLEU', 'CIDEr'),
                    decoding=dict(method='beam', num_beams=2, max_length=12, min_length=3))
    result = evaluate_caption(build_model(tiny_toyworld / 'vocab'), dataset, **settings)
    predictions = result.outputs['predictions']
    assert [p['image_id'] for p in predictions] == [1, 2, 3]
    assert result.counts == {'images': 3}
    direct = score_predictions(str(kept_gt), predictions, settings['metrics'])
    assert result.values() == direct.values()
    assert set(result.values()) >= {'BLEU-4', 'CIDEr'}


def test_record_image_ids_are_honoured_and_kept(tmp_path):
    records = [{'image': 'photos/a.jpg', 'image_id': 7, 'caption': ['one']},
               {'image': 'photos/b.jpg', 'image_id': 'coco_203564', 'caption': 'two'},
               {'image': 'photos/c.jpg', 'image_id': 'my dog', 'caption': ['three', 'four']},
               {'image': 'val2014/COCO_val2014_000000000042.jpg', 'caption': ['five']}]
    _write_json(tmp_path / 'list.json', records)
    dataset = CaptionEvalDataset(tmp_path, 'list.json', image_size=32)
    hashed = image_id_from_text('my dog')
    assert dataset.image_ids == [7, 203564, hashed, 42]
    assert hashed == image_id_from_text('my dog') != image_id_from_text('my cat')
    assert 0 <= hashed < 2 ** 48
    assert dataset.source_image_ids == {203564: 'coco_203564', hashed: 'my dog'}
    gt = json.loads(dataset.gt_file.read_text())
    assert [image.get('source_id') for image in gt['images']] == [None, 'coco_203564',
                                                                   'my dog', None]
    assert load_coco_references(dataset.gt_file) == {7: ['one'], 203564: ['two'],
                                                     hashed: ['three', 'four'], 42: ['five']}
    # A record's id wins over its file name's, also against a given ground truth.
    _write_json(tmp_path / 'gt.json', {'images': [{'id': 5}], 'annotations': [
        {'image_id': 5, 'caption': 'x', 'id': 1}]})
    _write_json(tmp_path / 'one.json', [{'image': 'COCO_val2014_000000000042.jpg',
                                         'image_id': 5}])
    assert CaptionEvalDataset(tmp_path, 'one.json', gt_file='gt.json').image_ids == [5]
    _write_json(tmp_path / 'one.json', [{'image': 'COCO_val2014_000000000042.jpg'}])
    with pytest.raises(BadSampleError, match='image id 42 .* is not in'):
        CaptionEvalDataset(tmp_path, 'one.json', gt_file='gt.json')


@pytest.mark.parametrize('records, message', [
    ([{'image': 'photos/cat.jpg', 'caption': ['a cat']}], "no 'image_id'.*add an 'image_id'"),
    ([{'image': 'a_1.jpg', 'caption': ['x']}, {'image': 'b.jpg', 'image_id': 'b_1',
                                               'caption': ['y']}], 'also the id of record 0'),
    ([{'image': 'a_1.jpg'}], "no 'caption'.*list_gt.json does not exist.*gt_file"),
    ([{'image': 'a_1.jpg', 'caption': []}], "'caption' holds"),
])
def test_unusable_lists_name_the_fix(tmp_path, records, message):
    _write_json(tmp_path / 'list.json', records)
    with pytest.raises(BadSampleError, match=message) as error:
        CaptionEvalDataset(tmp_path, 'list.json')
    assert error.value.file == str(tmp_path / 'list.json')


def _coco_from_ground_truth(gt: dict) -> dict:
    """A COCO captions file as COCO ships it (its own annotation ids, extra fields)."""
    return {'info': {}, 'licenses': [],
            'images': [dict(image, width=32, height=32) for image in gt['images']],
            'annotations': [dict(a, id=1000 + a['id']) for a in gt['annotations']]}


def test_converter_writes_blips_formats(tiny_toyworld, tmp_path):
    annotations = tiny_toyworld / 'annotations'
    gt = json.loads((annotations / 'coco_karpathy_test_gt.json').read_text())
    captions = _write_json(tmp_path / 'captions_test.json', _coco_from_ground_truth(gt))
    records_file, gt_file = convert(captions, tmp_path / 'out', 'test')
    # ToyWorld writes BLIP's schemas: the converted list is its test list, record for record.
    assert json.loads(records_file.read_text()) == \
        json.loads((annotations / 'coco_karpathy_test.json').read_text())
    assert load_coco_references(gt_file) == load_coco_references(
        annotations / 'coco_karpathy_test_gt.json')

    train = json.loads((annotations / 'coco_karpathy_train.json').read_text())
    images = {}
    for record in train:
        images.setdefault(record['image'], []).append(record['caption'])
    coco_train = {'images': [{'id': int(path.rsplit('_', 1)[1].split('.')[0]), 'file_name': path}
                             for path in images],
                  'annotations': []}
    for image, texts in zip(coco_train['images'], images.values()):
        coco_train['annotations'] += [{'image_id': image['id'], 'caption': text, 'id': 0}
                                      for text in texts]
    (train_file,) = convert(_write_json(tmp_path / 'train.json', coco_train), tmp_path / 'out',
                            'train')
    assert json.loads(train_file.read_text()) == train

    # Real COCO names, as in BLIP's coco_karpathy_{train,test}.json.
    coco = {'images': [{'id': 391895, 'file_name': 'COCO_val2014_000000391895.jpg'}],
            'annotations': [{'image_id': 391895, 'caption': 'a man on a bike', 'id': 9}]}
    source = _write_json(tmp_path / 'coco.json', coco)
    records_file, gt_file = convert(source, tmp_path / 'blip', 'test', image_root='val2014')
    assert json.loads(records_file.read_text()) == [
        {'image': 'val2014/COCO_val2014_000000391895.jpg', 'caption': ['a man on a bike']}]
    assert json.loads(gt_file.read_text())['annotations'] == [
        {'image_id': 391895, 'caption': 'a man on a bike', 'id': 1}]
    (train_file,) = convert(source, tmp_path / 'blip', 'train', image_root='val2014')
    assert json.loads(train_file.read_text()) == [
        {'image': 'val2014/COCO_val2014_000000391895.jpg', 'caption': 'a man on a bike',
         'image_id': 'coco_391895'}]


@pytest.mark.parametrize('edit, message', [
    (lambda c: c.pop('annotations'), "needs the lists 'images' and 'annotations'"),
    (lambda c: c['images'][1].pop('file_name'), "field 'file_name' is missing"),
    (lambda c: c['annotations'][0].pop('caption'), "field 'caption' is missing"),
    (lambda c: c['images'].append({'id': 4, 'file_name': 'owl.jpg'}),
     r'1 images have no caption, e\.g\. 4 \(owl\.jpg\)'),
    (lambda c: c['annotations'][0].update(image_id=9), 'refers to image id 9'),
    (lambda c: c['images'][2].update(id=1), 'repeats image id 1'),
])
def test_converter_rejects_bad_coco_files(tmp_path, edit, message):
    captions = json.loads(json.dumps(README_CAPTIONS))
    edit(captions)
    path = _write_json(tmp_path / 'captions.json', captions)
    with pytest.raises(BadSampleError, match=message) as error:
        convert(path, tmp_path / 'out', 'test')
    assert str(path) in str(error.value) and 'Fix:' in str(error.value)
    assert not (tmp_path / 'out').exists()


def test_converter_names_a_missing_captions_file(tmp_path):
    with pytest.raises(BadSampleError, match='no such file.*--captions'):
        convert(tmp_path / 'captions_val2017.json', tmp_path / 'out', 'test')
