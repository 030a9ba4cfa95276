"""The VQA task plugin: answering a dataset (rank / generate, cached, resumed), the ``vqa``
and ``gqa`` evaluators' scores, result files and baselines, and the boards' baseline line."""
import json

import pytest
import torch

from harness.core.registry import TASKS
from harness.results import ResultRecord
from tasks.datasets import GQADataset, VQAv2Dataset
from tasks.metrics import gqa_accuracy, vqa_accuracy, vqa_majority_baseline
from tasks.vqa.answering import answer_dataset, inference_settings

SIZE = 32
TEST_PATTERN = 'images/toyworld_vqa_test_{image_id:06d}.png'


@pytest.fixture(scope='module')
def model(tiny_vqa_model):
    """The shared tiny random BlipVQA (conftest)."""
    return tiny_vqa_model


@pytest.fixture
def vqa_test(tiny_toyworld):
    """ToyWorld's VQAv2-format test split, with answers and the answer list."""
    return VQAv2Dataset(tiny_toyworld, 'vqa/v2_OpenEnded_mscoco_test_questions.json',
                        annotation_file='vqa/v2_mscoco_test_annotations.json', split='test',
                        image_pattern=TEST_PATTERN, image_size=SIZE,
                        answer_list_file='annotations/answer_list.json')


def test_answers_are_the_models_own_and_a_second_run_reads_the_cache(model, vqa_test, tmp_path):
    predictions, rate = answer_dataset(model, vqa_test, method='rank', options=dict(k=4),
                                       answer_list=vqa_test.answer_list, work_dir=tmp_path,
                                       cache_key='ckpt', batch_size=3)
    assert [p['question_id'] for p in predictions] == \
        [q['question_id'] for q in vqa_test._questions] and 'questions/s' in rate
    items = [vqa_test[i] for i in range(4)]
    expected = model.answer(torch.stack([item['image'] for item in items]),
                            [item['question'] for item in items], method='rank',
                            answer_list=vqa_test.answer_list, k=4)
    assert [p['answer'] for p in predictions[:4]] == expected
    again, rate = answer_dataset(model, vqa_test, method='rank', options=dict(k=4),
                                 answer_list=vqa_test.answer_list, work_dir=tmp_path,
                                 cache_key='ckpt', batch_size=5)
    assert again == predictions and rate == {}  # nothing recomputed
    other, rate = answer_dataset(model, vqa_test, method='rank', options=dict(k=1),
                                 answer_list=vqa_test.answer_list, work_dir=tmp_path,
                                 cache_key='ckpt', batch_size=5)
    assert rate  # other settings are answered anew


def test_generate_answers_match_the_model_and_settings_are_checked(model, vqa_test):
    predictions, _ = answer_dataset(model, vqa_test.limit(3), method='generate')
    items = [vqa_test[i] for i in range(3)]
    expected = model.answer(torch.stack([item['image'] for item in items]),
                            [item['question'] for item in items], method='generate')
    assert [p['answer'] for p in predictions] == expected
    assert inference_settings('rank', None) == dict(k=128, score='blip')
    with pytest.raises(ValueError, match=r"unknown 'rank' option\(s\) \['num_beams'\]"):
        inference_settings('rank', dict(num_beams=3))
    with pytest.raises(ValueError, match='needs an answer list'):
        answer_dataset(model, vqa_test, method='rank', answer_list=None)


def test_vqa_evaluator_scores_officially_and_writes_the_server_file(model, vqa_test, tmp_path):
    result = TASKS.get('vqa')(model, vqa_test, work_dir=tmp_path, cache_key='ckpt',
                              inference=dict(k=8), batch_size=4,
                              prior_annotation_file='vqa/v2_mscoco_train_annotations.json')
    predictions = result.outputs['predictions']
    official = vqa_accuracy(predictions, vqa_test.annotations())
    assert result.metrics['accuracy'].value == pytest.approx(official['overall'])
    assert result.metrics['accuracy'].unit == '%'
    for answer_type, value in official['per_answer_type'].items():
        assert result.metrics[answer_type].value == pytest.approx(value)
    assert result.per_sample['accuracy'] == {str(q): a for q, a in
                                              official['per_question'].items()}
    written = json.loads((tmp_path / 'rank_result.json').read_text())
    assert written == [{'question_id': p['question_id'], 'answer': p['answer']}
                       for p in predictions] and all(isinstance(p['question_id'], int)
                                                     for p in written)
    train = json.loads((vqa_test.data_root / 'vqa/v2_mscoco_train_annotations.json')
                       .read_text())['annotations']
    prior = vqa_majority_baseline(train, vqa_test.annotations())['per_type_prior']
    assert result.baselines == {'accuracy': pytest.approx(prior)}
    assert sum(result.baseline_per_sample['accuracy'].values()) / len(vqa_test) == \
        pytest.approx(prior)
    assert 'question type' in result.baseline_basis
    assert result.counts == {'questions': len(vqa_test)}


def test_vqa_without_public_answers_writes_the_file_and_says_why_there_is_no_score(
        model, tiny_toyworld, tmp_path):
    dataset = VQAv2Dataset(tiny_toyworld, 'vqa/v2_OpenEnded_mscoco_test_questions.json',
                           split='test', image_pattern=TEST_PATTERN, image_size=SIZE)
    result = TASKS.get('vqa')(model, dataset, work_dir=tmp_path, method='generate')
    assert result.metrics['accuracy'].value is None
    assert 'upload the result file' in result.unavailable['accuracy']
    assert len(json.loads((tmp_path / 'generate_result.json').read_text())) == len(dataset)


def test_gqa_evaluator_scores_exact_match_and_writes_gqa_submission(model, tiny_toyworld,
                                                                     tmp_path):
    dataset = GQADataset(tiny_toyworld, 'gqa/testdev_balanced_questions.json', image_ext='.png',
                         image_size=SIZE, answer_list_file='annotations/answer_list.json')
    result = TASKS.get('gqa')(model, dataset, work_dir=tmp_path, inference=dict(k=8),
                              prior_annotation_file='vqa/v2_mscoco_train_annotations.json')
    expected = gqa_accuracy(result.outputs['predictions'], dataset.gold_answers())
    assert result.metrics['accuracy'].value == pytest.approx(expected['accuracy'])
    submission = json.loads((tmp_path / 'rank_result.json').read_text())
    assert [s['questionId'] for s in submission] == list(dataset.gold_answers())
    assert 0.0 <= result.baselines['accuracy'] <= 100.0


def _record(variant: str, baseline: float, scores=None, baseline_scores=None) -> ResultRecord:
    per_sample = {} if scores is None else {
        'per_sample': {'accuracy': scores}, 'baseline_per_sample': {'accuracy': baseline_scores}}
    return ResultRecord(
        experiment='vqa', variant=variant, task='vqa', dataset='toy', split='test',
        metrics={'accuracy': 50.0}, units={'accuracy': '%'}, higher_is_better={'accuracy': True},
        params=1, flops=None, throughput={}, seed=0, config_hash='x', git_revision='r',
        device='cpu', wall_time_s=1.0,
        extra={'counts': {'questions': 10}, 'baselines': {'accuracy': baseline},
               'baseline_basis': 'majority answer', **per_sample})


def test_boards_draw_a_recorded_baseline_only_when_the_records_agree():
    from harness.boards.chance import chance_and_basis
    agreeing = [_record('a', 30.0), _record('b', 30.0)]
    assert chance_and_basis('accuracy', agreeing, '%') == (30.0, 'majority answer')
    assert chance_and_basis('accuracy', [_record('a', 30.0), _record('b', 31.0)], '%') == \
        (None, '')
    assert chance_and_basis('BLEU-4', agreeing, '%') == (None, '')


def test_boards_test_each_variant_against_the_recorded_baseline_per_sample():
    from harness.boards.markdown import render_leaderboard
    ours = {str(i): 100.0 * (i % 4 != 0) for i in range(40)}  # 75%
    baseline = {str(i): 100.0 * (i % 2 == 0) for i in range(40)}  # 50%
    record = _record('tiny', 50.0, ours, baseline)
    board = render_leaderboard('vqa', [record], None)
    assert 'Chance level (majority answer): accuracy 50%.' in board
    assert 'tiny accuracy +25 (95% CI' in board and '40 samples)' in board


def test_a_prior_file_without_annotations_is_refused_naming_it(vqa_test, tmp_path):
    from tasks.datasets import BadSampleError
    from tasks.vqa.evaluate import prior_annotations
    bad = tmp_path / 'not_annotations.json'
    bad.write_text(json.dumps({'questions': []}))
    with pytest.raises(BadSampleError, match=r"not_annotations\.json.*'annotations' list"):
        prior_annotations(vqa_test, str(bad))
