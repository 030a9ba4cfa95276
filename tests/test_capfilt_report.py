"""CapFilt's report on hand-made examples: noise ratios, precision/recall/F1, unavailability."""
import json
import shutil

import pytest

from tasks.capfilt.corpus import bootstrapped_corpus, replicated_corpus
from tasks.capfilt.report import capfilt_report, rejection_quality

WEB = [dict(image=f'img{i}.png', caption=f'web caption {i}') for i in range(5)]
LABELS = ['clean', 'mismatched', 'clean', 'generic', 'attribute_swap']
# Web pairs 1, 2 and 3 fall below the threshold; synthetic pair 4 too.
WEB_P = [0.9, 0.2, 0.4, 0.1, 0.7]
SYNTHETIC = [dict(image=pair['image'], caption=f'synthetic {i}') for i, pair in enumerate(WEB)]
SYNTHETIC_P = [0.8, 0.6, 0.55, 0.9, 0.3]
HUMAN = [dict(image='human.png', caption='a human caption')]


def scores():
    web = [dict(source='web', record=i, p_match=p, **WEB[i]) for i, p in enumerate(WEB_P)]
    synthetic = [dict(source='synthetic', record=i, p_match=p, **SYNTHETIC[i])
                 for i, p in enumerate(SYNTHETIC_P)]
    return web + synthetic


def test_rejection_quality_by_hand():
    # rejected: 1, 2, 3; noisy: 1, 3, 4 -> hits 1 and 3: precision 2/3, recall 2/3
    quality = rejection_quality([False, True, True, True, False],
                                [label != 'clean' for label in LABELS])
    assert quality['filter_precision'] == pytest.approx(200 / 3)
    assert quality['filter_recall'] == pytest.approx(200 / 3)
    assert quality['filter_f1'] == pytest.approx(200 / 3)
    lopsided = rejection_quality([True, True, True, True], [True, False, False, False])
    assert lopsided['filter_precision'] == pytest.approx(25.0)
    assert lopsided['filter_recall'] == pytest.approx(100.0)
    assert lopsided['filter_f1'] == pytest.approx(40.0)
    assert rejection_quality([False, False], [True, False]) == dict(
        filter_precision=0.0, filter_recall=0.0, filter_f1=0.0)


def test_report_reads_the_side_file_and_matches_the_hand_count(tmp_path):
    labels_file = tmp_path / 'noise_labels.json'
    labels_file.write_text(json.dumps([dict(pair, label=label)
                                       for pair, label in zip(WEB, LABELS)]))
    report = capfilt_report(scores(), 0.5, WEB, SYNTHETIC, HUMAN, labels_file, probe_cider=12.5)
    metrics = report['metrics']
    assert metrics['noise_ratio_web'] == pytest.approx(60.0)
    assert metrics['noise_ratio_synthetic'] == pytest.approx(20.0)
    assert metrics['filter_precision'] == pytest.approx(200 / 3)
    assert metrics['filter_recall'] == pytest.approx(200 / 3)
    assert metrics['web_noise_rate'] == pytest.approx(100 * sum(
        label != 'clean' for label in LABELS) / len(LABELS))
    assert metrics['synthetic_CIDEr'] == 12.5  # no web image has human captions
    assert 'probe' in report['notes']['synthetic_CIDEr'] and report['unavailable'] == {}


def test_report_without_side_file_says_unavailable(tmp_path):
    report = capfilt_report(scores(), 0.5, WEB, SYNTHETIC, HUMAN, tmp_path / 'absent.json',
                            probe_cider=None)
    assert {'filter_precision', 'filter_recall', 'filter_f1', 'web_noise_rate',
            'synthetic_CIDEr'} == set(report['unavailable'])
    assert set(report['metrics']) == {'noise_ratio_web', 'noise_ratio_synthetic'}


def test_misaligned_side_file_names_file_and_record(tmp_path):
    labels_file = tmp_path / 'noise_labels.json'
    shuffled = [dict(pair, label='clean') for pair in reversed(WEB)]
    labels_file.write_text(json.dumps(shuffled))
    with pytest.raises(ValueError, match=r'noise_labels.json, record 0: .*Fix: use the label'):
        capfilt_report(scores(), 0.5, WEB, SYNTHETIC, HUMAN, labels_file, probe_cider=None)


def test_corpus_keeps_human_pairs_and_pairs_above_threshold():
    corpus = bootstrapped_corpus(HUMAN, scores(), 0.5)
    kept_web = [WEB[i] for i in (0, 4)]
    kept_synthetic = [SYNTHETIC[i] for i in (0, 1, 2, 3)]
    assert corpus == HUMAN + kept_web + kept_synthetic


def test_replicated_corpus_matches_size_with_web_texts_only(tmp_path):
    human_file, web_file = tmp_path / 'human.json', tmp_path / 'web.json'
    human_file.write_text(json.dumps(HUMAN))
    web_file.write_text(json.dumps(WEB))
    corpus = replicated_corpus(human_file, web_file, 13)
    assert len(corpus) == 13 and corpus[:1] == HUMAN
    assert corpus[1:] == WEB + WEB + WEB[:2]
    assert replicated_corpus(human_file, web_file, 3) == HUMAN + WEB  # never drops a pair


@pytest.mark.skipif(shutil.which('java') is None, reason='CIDEr tokenises with Java')
def test_synthetic_cider_uses_human_captions_of_the_same_images():
    # CIDEr's document frequencies come from the references: use two images.
    human = [dict(image=f'img{i}.png', caption=text) for i in (0, 1) for text in
             (f'synthetic {i}', f'a synthetic caption {i}', f'one more caption {i}')] + HUMAN
    report = capfilt_report(scores(), 0.5, WEB, SYNTHETIC, human, None, probe_cider=12.5)
    assert report['metrics']['synthetic_CIDEr'] > 12.5
    assert report['notes']['synthetic_CIDEr'].endswith('of the same images')
