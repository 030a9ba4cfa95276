"""NoCaps: BLIP's reader, per-domain scoring as the server does it, the test-split result
file, and the ToyWorld NoCaps split (held-out colours, other files untouched)."""
import hashlib
import json
import re
import shutil

import pytest
import torch
from PIL import Image

from harness.core.registry import DATASETS, PAPER_TABLES, TASKS
from tasks.caption.nocaps import score_nocaps
from tasks.datasets.errors import BadSampleError
from tasks.toyworld import ToyWorldSpec, generate_toyworld, writer
from tasks.toyworld.annotators import possible_answers
from tasks.toyworld.nocaps_files import HELD_OUT_COLOURS
from tasks.toyworld.scene import COLOURS

needs_java = pytest.mark.skipif(shutil.which('java') is None,
                                reason='pycocoevalcap needs a Java runtime')

GROUND_TRUTH = {
    'images': [{'id': 0, 'file_name': 'a.jpg', 'domain': 'in-domain'},
               {'id': 1, 'file_name': 'b.jpg', 'domain': 'in-domain'},
               {'id': 2, 'file_name': 'c.jpg', 'domain': 'near-domain'},
               {'id': 3, 'file_name': 'd.jpg', 'domain': 'near-domain'},
               {'id': 4, 'file_name': 'e.jpg', 'domain': 'out-domain'},
               {'id': 5, 'file_name': 'f.jpg', 'domain': 'out-domain'}],
    'annotations': [
        {'image_id': 0, 'id': 0, 'caption': 'A red square left of a blue circle.'},
        {'image_id': 0, 'id': 1, 'caption': 'a small red box beside a blue ball'},
        {'image_id': 1, 'id': 2, 'caption': 'Two green triangles on stripes.'},
        {'image_id': 1, 'id': 3, 'caption': 'a pair of green triangles'},
        {'image_id': 2, 'id': 4, 'caption': 'A pink star above a green circle.'},
        {'image_id': 2, 'id': 5, 'caption': 'a green disc under a pink star'},
        {'image_id': 3, 'id': 6, 'caption': 'A gold cross and a red square.'},
        {'image_id': 3, 'id': 7, 'caption': 'a red box next to a golden plus sign'},
        {'image_id': 4, 'id': 8, 'caption': 'A pink diamond on a grey background.'},
        {'image_id': 4, 'id': 9, 'caption': 'one pink rhombus'},
        {'image_id': 5, 'id': 10, 'caption': 'A gold star and a pink circle.'},
        {'image_id': 5, 'id': 11, 'caption': 'a golden star beside a pink dot'},
    ],
}
PREDICTIONS = [{'image_id': 0, 'caption': 'a red square next to a blue circle'},
               {'image_id': 1, 'caption': 'two green triangles'},
               {'image_id': 2, 'caption': 'a star above a green circle'},
               {'image_id': 3, 'caption': 'a red square and a cross'},
               {'image_id': 4, 'caption': 'a purple diamond'},
               {'image_id': 5, 'caption': 'a yellow star and a red circle'}]


def write_nocaps_root(root, records, ground_truth=GROUND_TRUTH):
    """A data root with BLIP-format records, 8x8 images and (optionally) ground truth."""
    (root / 'annotations').mkdir(parents=True)
    (root / 'annotations' / 'nocaps_val.json').write_text(json.dumps(records))
    if ground_truth is not None:
        (root / 'annotations' / 'gt.json').write_text(json.dumps(ground_truth))
    for record in records:
        (root / record['image']).parent.mkdir(parents=True, exist_ok=True)
        Image.new('RGB', (8, 8), (record['img_id'] * 40, 0, 0)).save(root / record['image'])


def build(root, gt_file='annotations/gt.json', **options):
    return DATASETS.build(dict(type='NoCapsEvalDataset', data_root=str(root),
                               ann_file='annotations/nocaps_val.json', gt_file=gt_file,
                               image_size=16, **options))


THREE = [{'image': 'val/a.jpg', 'img_id': 4}, {'image': 'val/b.jpg', 'img_id': 0},
         {'image': 'val/c.jpg', 'img_id': 2}]


def test_reader_yields_images_with_their_nocaps_ids(tmp_path):
    write_nocaps_root(tmp_path, THREE)
    dataset = build(tmp_path)
    assert len(dataset) == 3
    items = [dataset[i] for i in range(3)]
    assert [item['image_id'] for item in items] == [4, 0, 2]
    assert all(item['image'].shape == (3, 16, 16) for item in items)
    assert not torch.equal(items[0]['image'], items[1]['image'])


def test_reader_rejects_ids_outside_the_ground_truth_and_skips_bad_images(tmp_path):
    write_nocaps_root(tmp_path / 'a', THREE + [{'image': 'val/d.jpg', 'img_id': 99}])
    with pytest.raises(BadSampleError, match='img_id 99 is not in'):
        build(tmp_path / 'a')
    write_nocaps_root(tmp_path / 'b', THREE)
    (tmp_path / 'b' / 'val' / 'b.jpg').write_bytes(b'not an image')
    with pytest.raises(BadSampleError, match='corrupt'):
        build(tmp_path / 'b')[1]
    assert build(tmp_path / 'b', on_bad_sample='skip')[1]['image_id'] == 2
    assert build(tmp_path / 'b', gt_file=None).gt_file is None  # the test split: no captions


def _direct_cider(image_ids):
    """pycocoevalcap's own tokenizer + CIDEr on the images ``image_ids`` only."""
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    references = {i: [{'caption': a['caption']} for a in GROUND_TRUTH['annotations']
                      if a['image_id'] == i] for i in image_ids}
    predictions = {p['image_id']: [{'caption': p['caption']}] for p in PREDICTIONS
                   if p['image_id'] in image_ids}
    tokenizer = PTBTokenizer()
    score, _ = Cider().compute_score(tokenizer.tokenize(references),
                                     tokenizer.tokenize(predictions))
    return 100.0 * score


@needs_java
def test_each_domain_is_scored_on_its_own_images(tmp_path):
    gt_file = tmp_path / 'gt.json'
    gt_file.write_text(json.dumps(GROUND_TRUTH))
    result = score_nocaps(gt_file, PREDICTIONS)
    values = result.values()
    subsets = {'in-domain': [0, 1], 'near-domain': [2, 3], 'out-domain': [4, 5],
               'overall': [0, 1, 2, 3, 4, 5]}
    for subset, image_ids in subsets.items():
        assert values[f'{subset}_CIDEr'] == pytest.approx(_direct_cider(image_ids), abs=1e-9)
        assert f'{subset}_SPICE' in values or f'{subset}_SPICE' in result.unavailable
        assert result.counts[f'{subset} images'] == len(image_ids)
    # A domain's CIDEr is not the mean of its images' scores in the overall run.
    overall = result.per_sample['overall_CIDEr']
    assert sum(overall.values()) / 6 == pytest.approx(values['overall_CIDEr'])
    assert (overall['4'] + overall['5']) / 2 != pytest.approx(values['out-domain_CIDEr'])
    assert result.metrics['overall_CIDEr'].unit == '×100'


class FixedCaptioner:
    """Captions each image by its mean pixel value; records the decoding options it got."""

    def __init__(self):
        self.decodings = []

    def generate_captions(self, images, generator=None, **decoding):
        self.decodings.append(decoding)
        return [f'a picture number {int(image.mean() * 1000)}' for image in images]


def test_test_split_writes_the_server_result_file_and_no_metrics(tmp_path):
    write_nocaps_root(tmp_path / 'data', THREE, ground_truth=None)
    dataset = build(tmp_path / 'data', gt_file=None)
    model = FixedCaptioner()
    with pytest.raises(ValueError, match='pass cache_key'):  # no weights to name its results
        TASKS.get('nocaps')(model, dataset, work_dir=tmp_path / 'work', batch_size=2)
    result = TASKS.get('nocaps')(model, dataset, work_dir=tmp_path / 'work', batch_size=2,
                                 cache_key='fixed-captioner')
    result_file = tmp_path / 'work' / 'nocaps_val_result.json'
    assert result.outputs['result_file'] == str(result_file)
    written = json.loads(result_file.read_text())
    assert [entry['image_id'] for entry in written] == [4, 0, 2]
    assert all(set(entry) == {'image_id', 'caption'} and isinstance(entry['caption'], str)
               for entry in written)
    assert written == result.outputs['predictions']
    assert result.metrics == {}
    assert 'no public ground truth' in result.unavailable['overall_CIDEr']
    assert 'nocaps_val_result.json' in result.unavailable['out-domain_SPICE']
    assert result.counts == {'images': 3}
    assert model.decodings[0]['repetition_penalty'] == 1.1  # BLIP's eval_nocaps.py


def _captions_by_domain(root):
    gt = json.loads((root / 'annotations' / 'nocaps_val_gt.json').read_text())
    domain = {image['id']: image['domain'] for image in gt['images']}
    by_domain = {}
    for annotation in gt['annotations']:
        by_domain.setdefault(domain[annotation['image_id']], {}).setdefault(
            annotation['image_id'], []).append(annotation['caption'].lower())
    return by_domain


def _words(text):
    return set(re.findall(r'[a-z0-9]+', text.lower()))


def test_toyworld_nocaps_split_has_three_domains_of_held_out_colours(tiny_toyworld):
    by_domain = _captions_by_domain(tiny_toyworld)
    assert sorted(by_domain) == ['in-domain', 'near-domain', 'out-domain']
    held_out, seen = set(HELD_OUT_COLOURS), set(COLOURS)
    for captions in by_domain['out-domain'].values():
        assert all(_words(c) & held_out and not _words(c) & seen for c in captions)
    for captions in by_domain['in-domain'].values():
        assert not any(_words(c) & held_out for c in captions)
    for captions in by_domain['near-domain'].values():
        words = set().union(*map(_words, captions))
        assert words & held_out and words & seen
    # Held out: no training text names these colours, but the vocabulary has every word.
    training = ''.join((tiny_toyworld / 'annotations' / name).read_text().lower() for name in
                       ('coco_karpathy_train.json', 'pretrain_human.json', 'pretrain_web.json'))
    assert not _words(training) & held_out
    assert held_out <= set(possible_answers())
    vocab = set((tiny_toyworld / 'vocab' / 'vocab.txt').read_text().split())
    assert set().union(*(_words(c) for d in by_domain.values() for cs in d.values()
                         for c in cs)) <= vocab
    dataset = DATASETS.build(dict(type='NoCapsEvalDataset', data_root=str(tiny_toyworld),
                                  ann_file='annotations/nocaps_val.json',
                                  gt_file='annotations/nocaps_val_gt.json', image_size=32))
    assert len(dataset) == ToyWorldSpec.tiny().n_test and dataset[0]['image_id'] == 0


def _hashes(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob('*') if p.is_file()}


def test_nocaps_split_leaves_every_other_toyworld_file_unchanged(tmp_path, monkeypatch):
    spec = ToyWorldSpec.tiny(seed=3)
    generate_toyworld(spec, tmp_path / 'with')
    monkeypatch.setattr(writer, 'write_nocaps_files', lambda spec, root: None)
    generate_toyworld(spec, tmp_path / 'without')
    with_nocaps, without = _hashes(tmp_path / 'with'), _hashes(tmp_path / 'without')
    assert {k: with_nocaps[k] for k in without} == without
    added = set(with_nocaps) - set(without)
    assert {'annotations/nocaps_val.json', 'annotations/nocaps_val_gt.json'} < added
    assert all(name.startswith(('annotations/nocaps_val', 'images/toyworld_nocaps_val_'))
               for name in added)


def test_paper_rows_use_the_recorded_metric_names():
    table = PAPER_TABLES.get('nocaps')()
    names = {f'{s}_{m}' for s in ('in-domain', 'near-domain', 'out-domain', 'overall')
             for m in ('CIDEr', 'SPICE')}
    assert table.task == 'nocaps' and table.rows
    assert all(set(row.metrics) <= names and row.source for row in table.rows)
    assert set(table.units) == names
