"""Caption metrics equal pycocoevalcap's COCOEvalCap (without SPICE) on small inputs."""
import json
import shutil

import pytest
from pycocoevalcap.spice import get_stanford_models

from tasks.metrics import caption as caption_metrics

pytestmark = pytest.mark.skipif(shutil.which('java') is None,
                                reason='pycocoevalcap needs a Java runtime')

GROUND_TRUTH = {
    'images': [{'id': 42}, {'id': 7}, {'id': 13}],
    'annotations': [
        {'image_id': 42, 'id': 1, 'caption': 'A red square sits left of a blue circle.'},
        {'image_id': 42, 'id': 2, 'caption': 'A small red box next to a blue ball'},
        {'image_id': 42, 'id': 3, 'caption': "There's a red square and a blue circle."},
        {'image_id': 7, 'id': 4, 'caption': 'Two green triangles on a striped background.'},
        {'image_id': 7, 'id': 5, 'caption': 'A pair of green triangles, side by side!'},
        {'image_id': 13, 'id': 6, 'caption': 'A large yellow star above a purple circle.'},
        {'image_id': 13, 'id': 7, 'caption': 'A yellow star (big) over a violet disc'},
    ],
}
PREDICTIONS = [
    {'image_id': 7, 'caption': 'two green triangles on a background'},
    {'image_id': 42, 'caption': 'a red square next to a blue circle.'},
    {'image_id': 13, 'caption': 'a yellow star above a circle'},
]
OFFICIAL_KEYS = {'Bleu_1': 'BLEU-1', 'Bleu_2': 'BLEU-2', 'Bleu_3': 'BLEU-3',
                 'Bleu_4': 'BLEU-4', 'METEOR': 'METEOR', 'ROUGE_L': 'ROUGE-L', 'CIDEr': 'CIDEr'}


class _SkippedScorer:
    """Stands in for a pycocoevalcap scorer inside COCOEvalCap (test only): Spice, which
    cannot run offline, and Meteor in the fast test, whose Java start-up takes many seconds."""

    def compute_score(self, gts, res):
        return 0.0, [0.0] * len(gts)

    def method(self):
        return 'skipped'


@pytest.fixture
def gt_file(tmp_path):
    path = tmp_path / 'captions_gt.json'
    path.write_text(json.dumps(GROUND_TRUTH))
    return str(path)


def official_scores(gt_file, predictions, monkeypatch, with_meteor):
    """COCOEvalCap's scores on the predicted images, SPICE (and maybe METEOR) stubbed out."""
    import pycocoevalcap.eval
    from pycocotools.coco import COCO
    monkeypatch.setattr(pycocoevalcap.eval, 'Spice', _SkippedScorer)
    if not with_meteor:
        monkeypatch.setattr(pycocoevalcap.eval, 'Meteor', _SkippedScorer)
    coco = COCO(gt_file)
    coco_result = coco.loadRes(predictions)
    evaluator = pycocoevalcap.eval.COCOEvalCap(coco, coco_result)
    evaluator.params['image_id'] = coco_result.getImgIds()
    evaluator.evaluate()
    return {ours: evaluator.eval[theirs] for theirs, ours in OFFICIAL_KEYS.items()
            if with_meteor or ours != 'METEOR'}


@pytest.fixture
def no_spice_jars(tmp_path, monkeypatch):
    """Point the SPICE jar lookup at an empty folder, whatever is installed."""
    monkeypatch.setattr(get_stanford_models, 'SPICEDIR', str(tmp_path))


def test_scores_equal_coco_eval_cap_exactly_on_a_subset(gt_file, monkeypatch, no_spice_jars):
    predictions = PREDICTIONS[:2]
    ours = caption_metrics.coco_caption_metrics(gt_file, predictions,
                                                metrics=['BLEU', 'ROUGE-L', 'CIDEr', 'SPICE'])
    assert ours.scores == official_scores(gt_file, predictions, monkeypatch, with_meteor=False)
    assert set(ours.unavailable) == {'SPICE'}
    assert 'SPICE: unavailable (Stanford CoreNLP jar' in str(ours)


@pytest.mark.slow
def test_all_scores_with_meteor_equal_coco_eval_cap_exactly(gt_file, monkeypatch,
                                                             no_spice_jars):
    ours = caption_metrics.coco_caption_metrics(gt_file, PREDICTIONS)
    assert ours.scores == official_scores(gt_file, PREDICTIONS, monkeypatch, with_meteor=True)
    assert list(ours.unavailable) == ['SPICE'] and 'SPICE' not in ours.scores


def test_in_memory_scoring_matches_file_scoring(gt_file, no_spice_jars):
    references = caption_metrics.load_coco_references(gt_file)
    predictions = {p['image_id']: p['caption'] for p in PREDICTIONS}
    in_memory = caption_metrics.score_captions(references, predictions, metrics=['CIDEr'])
    from_file = caption_metrics.coco_caption_metrics(gt_file, PREDICTIONS, metrics=['CIDEr'])
    assert in_memory.scores == from_file.scores
    assert list(in_memory.scores) == ['CIDEr'] and not in_memory.unavailable
    assert set(in_memory.per_image['CIDEr']) == {42, 7, 13}


def test_spice_unavailable_reason_names_missing_jar(no_spice_jars, tmp_path):
    reason = caption_metrics.spice_unavailable_reason()
    assert 'stanford-corenlp-3.6.0.jar (inside the installed pycocoevalcap) is missing' in reason
    assert str(tmp_path) not in reason  # no machine path: boards quote this reason


def test_bad_inputs_raise_clear_errors(gt_file):
    with pytest.raises(ValueError, match='unknown caption metrics'):
        caption_metrics.score_captions({1: ['a cat']}, {1: 'a cat'}, metrics=['BLEU-4'])
    with pytest.raises(ValueError, match='no reference captions'):
        caption_metrics.coco_caption_metrics(gt_file, [{'image_id': 999, 'caption': 'x'}])
    with pytest.raises(ValueError, match='more than one predicted caption'):
        caption_metrics.coco_caption_metrics(gt_file, PREDICTIONS + PREDICTIONS[:1])


def test_registered_caption_metric_reports_unavailable_spice(gt_file, no_spice_jars):
    from harness.core.registry import METRICS
    metric = METRICS.build(dict(type='CocoCaptionMetric', gt_file=gt_file,
                                metrics=['CIDEr', 'SPICE']))
    metric.process(None, [dict(p, gt_captions=['ignored']) for p in PREDICTIONS])
    result = metric.evaluate(len(PREDICTIONS))
    assert set(result) == {'coco_caption/CIDEr', 'coco_caption/unavailable'}
    assert 'SPICE' in result['coco_caption/unavailable']
    direct = caption_metrics.coco_caption_metrics(gt_file, PREDICTIONS, metrics=['CIDEr'])
    assert result['coco_caption/CIDEr'] == pytest.approx(100.0 * direct.scores['CIDEr'])


def test_failing_spice_run_is_reported_not_raised(gt_file, tmp_path, monkeypatch):
    # Empty stand-in jars pass the presence check; the real SPICE run then fails in Java.
    library = tmp_path / 'lib'
    library.mkdir()
    for name in ('stanford-corenlp-3.6.0.jar', 'stanford-corenlp-3.6.0-models.jar'):
        (library / name).write_bytes(b'')
    monkeypatch.setattr(get_stanford_models, 'SPICEDIR', str(tmp_path))
    result = caption_metrics.coco_caption_metrics(gt_file, PREDICTIONS[:1], metrics=['SPICE'])
    assert result.scores == {}
    assert result.unavailable['SPICE'].startswith('SPICE failed')


def test_registered_caption_metric_adds_blips_selection_criterion(gt_file):
    """BLIP train_caption.py keeps the epoch with the best ``CIDEr + Bleu_4``."""
    from harness.core.registry import METRICS
    metric = METRICS.build(dict(type='CocoCaptionMetric', gt_file=gt_file,
                                metrics=['BLEU', 'CIDEr']))
    metric.process(None, PREDICTIONS)
    result = metric.evaluate(len(PREDICTIONS))
    assert result['coco_caption/CIDEr+BLEU-4'] == pytest.approx(
        result['coco_caption/CIDEr'] + result['coco_caption/BLEU-4'])
    direct = caption_metrics.coco_caption_metrics(gt_file, PREDICTIONS, metrics=['BLEU', 'CIDEr'])
    assert result['coco_caption/CIDEr+BLEU-4'] == pytest.approx(
        100.0 * (direct.scores['CIDEr'] + direct.scores['BLEU-4']))


@pytest.mark.slow
def test_kept_meteor_process_is_reused_and_scores_as_a_fresh_one():
    """One METEOR JVM serves every request of the process (its start costs ~6 s); a second
    request on it, a request after it died, and a request after a failed one (which leaves
    pycocoevalcap's lock taken) all score as a fresh pycocoevalcap Meteor does."""
    from pycocoevalcap.meteor.meteor import Meteor
    references = {1: ['a red square left of a blue circle', 'a red box and a blue ball'],
                  2: ['two green triangles', 'a pair of green triangles side by side']}
    predictions = {1: ['a red square next to a blue circle'], 2: ['two green triangles']}
    fresh = Meteor().compute_score(references, predictions)
    meteor = caption_metrics.SharedMeteor()
    try:
        assert meteor.pid is None
        assert meteor.compute_score(references, predictions) == fresh
        first_pid = meteor.pid
        assert meteor.compute_score(references, predictions) == fresh
        assert meteor.pid == first_pid
        meteor._meteor.meteor_p.kill()
        meteor._meteor.meteor_p.wait()
        assert meteor.compute_score(references, predictions) == fresh
        assert meteor.pid not in (None, first_pid)
        with pytest.raises(AssertionError):  # two predictions for one image, lock held
            meteor.compute_score(references, {1: ['a', 'b'], 2: ['c']})
        assert meteor.pid is None
        assert meteor.compute_score(references, predictions) == fresh
    finally:
        meteor.close()
    assert meteor.pid is None
