"""Official VQA accuracy and its answer normalisation; GQA exact match."""
import pytest

from tasks.metrics import (gqa_accuracy, normalize_predicted_answer, process_punctuation,
                           vqa_accuracy, vqa_question_accuracy)


def human_answers(*answers):
    """Answer records as in VQAv2 annotations (unique answer ids)."""
    return [{'answer': answer, 'answer_confidence': 'yes', 'answer_id': index + 1}
            for index, answer in enumerate(answers)]


def with_k_agreeing(k, answer='2', other='3'):
    return human_answers(*([answer] * k + [other] * (10 - k)))


@pytest.mark.parametrize('k, expected', [
    (0, 0.0),
    (1, 9 * (1 / 3) / 10),                   # 9 subsets keep the one match
    (2, (2 * (1 / 3) + 8 * (2 / 3)) / 10),   # 0.6
    (3, (3 * (2 / 3) + 7 * 1) / 10),         # 0.9: 3 of 10 humans is not full credit
    (4, 1.0),
    (10, 1.0),
])
def test_accuracy_averages_the_ten_leave_one_out_subsets(k, expected):
    assert vqa_question_accuracy('2', with_k_agreeing(k)) == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize('raw, normalized', [
    ('Two', '2'),
    ('the dog.', 'dog'),
    ('yes!', 'yes'),
    ('10,000', '10000'),          # comma between digits: every mark is deleted
    ('dont', "don't"),
    ('  A Red, Car  ', 'red car'),  # "," not next to a space → replaced by a space
    ('red ,car', 'red car'),      # "," next to a space → deleted
    ('3.5', '3.5'),               # a period before a digit is kept
    ('none', '0'),
    ('an apple\tpie\n', 'apple pie'),
    ('black/white', 'black white'),
])
def test_prediction_normalisation_matches_official(raw, normalized):
    assert normalize_predicted_answer(raw) == normalized


def test_period_strip_keeps_the_official_count_of_32():
    assert process_punctuation('.' * 40) == '.' * 8


def test_ground_truth_gets_punctuation_only_and_only_when_answers_disagree():
    # Answers disagree → gt punctuation is processed ("yes." → "yes"), so 4 humans match.
    assert vqa_question_accuracy('yes', human_answers(*['yes.'] * 4 + ['no'] * 6)) == 1.0
    # All ten identical → gt left raw: "yes." never equals the normalised prediction "yes".
    assert vqa_question_accuracy('yes', human_answers(*['yes.'] * 10)) == 0.0
    # gt is not stripped after punctuation: "yes!" becomes "yes " and matches nothing.
    assert process_punctuation('yes!') == 'yes '
    assert vqa_question_accuracy('yes', human_answers(*['yes!'] * 4 + ['no'] * 6)) == 0.0
    # No digit/article processing of gt: "two" in gt does not match prediction "2".
    assert vqa_question_accuracy('two', human_answers(*['two'] * 4 + ['3'] * 6)) == 0.0


def test_identical_answer_records_leave_out_together_as_officially():
    records = [{'answer': 'cat', 'answer_confidence': 'yes'}] * 3 + \
              [{'answer': 'dog', 'answer_confidence': 'yes'}] * 7
    # Leaving out a "cat" record removes all three → 0 matches; leaving out "dog" → 3 matches.
    assert vqa_question_accuracy('cat', records) == pytest.approx(0.7)


def test_vqa_accuracy_overall_and_per_type():
    annotations = [
        {'question_id': 1, 'answer_type': 'number', 'question_type': 'how many',
         'answers': with_k_agreeing(3)},
        {'question_id': 2, 'answer_type': 'yes/no', 'question_type': 'is the',
         'answers': with_k_agreeing(10, 'yes', 'no')},
        {'question_id': 3, 'answer_type': 'other', 'question_type': 'what color',
         'answers': with_k_agreeing(1, 'red', 'blue')},
    ]
    predictions = [{'question_id': 1, 'answer': 'two'}, {'question_id': 2, 'answer': 'Yes'},
                   {'question_id': 3, 'answer': 'red'}]
    result = vqa_accuracy(predictions, annotations)
    assert result['overall'] == pytest.approx(100 * (0.9 + 1.0 + 0.3) / 3)
    assert result['per_answer_type'] == pytest.approx(
        {'number': 90.0, 'yes/no': 100.0, 'other': 30.0})
    assert result['per_question_type']['how many'] == pytest.approx(90.0)
    assert result['per_question'] == pytest.approx({1: 90.0, 2: 100.0, 3: 30.0})
    assert result['num_questions'] == 3


def test_vqa_accuracy_rejects_unknown_and_duplicate_questions():
    annotations = [{'question_id': 1, 'answer_type': 'other', 'question_type': 'what',
                    'answers': with_k_agreeing(10, 'cat')}]
    with pytest.raises(ValueError, match='not in the VQA annotations'):
        vqa_accuracy([{'question_id': 5, 'answer': 'cat'}], annotations)
    with pytest.raises(ValueError, match='more than once'):
        vqa_accuracy([{'question_id': 1, 'answer': 'cat'}] * 2, annotations)


def test_gqa_exact_match_after_strip_and_lower_case():
    official_layout = {'201': {'answer': 'left'}, '202': {'answer': 'no'},
                       '203': {'answer': 'the dog'}}
    predictions = [{'question_id': 201, 'answer': ' Left '}, {'question_id': '202',
                   'answer': 'yes'}, {'question_id': '203', 'answer': 'dog'}]
    result = gqa_accuracy(predictions, official_layout)
    assert result['per_question'] == {'201': 100.0, '202': 0.0, '203': 0.0}
    assert result['accuracy'] == pytest.approx(100 / 3)
    record_layout = [{'question_id': qid, **question} for qid, question in official_layout.items()]
    assert gqa_accuracy(predictions, record_layout) == result


def test_registered_vqa_and_gqa_metrics_collect_and_score(tmp_path):
    import json

    from harness.core.registry import METRICS
    vqa_file = tmp_path / 'vqa_annotations.json'
    vqa_file.write_text(json.dumps({'annotations': [
        {'question_id': 1, 'answer_type': 'number', 'question_type': 'how many',
         'answers': with_k_agreeing(3)}]}))
    vqa_metric = METRICS.build(dict(type='VQAAccuracyMetric', ann_file=str(vqa_file)))
    vqa_metric.process(None, [{'question_id': 1, 'answer': 'Two'}])
    assert vqa_metric.evaluate(1) == pytest.approx({'vqa/overall': 90.0, 'vqa/number': 90.0})

    gqa_file = tmp_path / 'gqa_questions.json'
    gqa_file.write_text(json.dumps({'7': {'answer': 'left'}}))
    gqa_metric = METRICS.build(dict(type='GQAAccuracyMetric', ann_file=str(gqa_file),
                                    prediction_key='pred_answer'))
    gqa_metric.process(None, [{'question_id': '7', 'pred_answer': 'left'}])
    assert gqa_metric.evaluate(1) == {'gqa/accuracy': 100.0}
    with pytest.raises(KeyError, match="needs data sample keys \\['pred_answer'\\]"):
        gqa_metric.process(None, [{'question_id': '7', 'answer': 'left'}])
