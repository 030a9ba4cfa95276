"""VQA data and metrics: evaluator revisions, GQA normalisation, the server result file,
majority baselines, the VQAv2 / Visual Genome QA readers and the ToyWorld VQA splits."""
import dataclasses
import hashlib
import json
import shutil

import pytest
from PIL import Image

from harness.core.registry import METRICS
from tasks.datasets import (BadSampleError, GQADataset, VisualGenomeQADataset, VQADataset,
                            VQAv2Dataset, vqa_train_collate)
from tasks.metrics import (gqa_accuracy, gqa_majority_baseline, majority_answers,
                           vqa_accuracy, vqa_majority_baseline, vqa_question_accuracy,
                           vqa_result_records, write_vqa_results)
from tasks.toyworld import ToyWorldSpec
from tasks.toyworld.writer import generate_toyworld

SIZE = 32


def human_answers(*answers):
    return [{'answer': answer, 'answer_confidence': 'yes', 'answer_id': index + 1}
            for index, answer in enumerate(answers)]


# --- VQAv2 evaluator revisions ---------------------------------------------------------------

@pytest.mark.parametrize('prediction, answers, acc_2016, acc_2021', [
    # Ten identical answers: 2016 normalises the prediction, 2021 compares it only stripped.
    ('Yes', ['yes'] * 10, 1.0, 0.0),
    ('yes.', ['yes.'] * 10, 0.0, 1.0),
    # Disagreeing answers: 2021 also digit/article-processes the ground truth...
    ('two', ['two'] * 4 + ['3'] * 6, 0.0, 1.0),
    ('dog', ['the dog'] * 4 + ['cat'] * 6, 0.0, 1.0),
    # ... and strips it after the punctuation step; 2016 leaves "yes " unmatched.
    ('yes', ['yes!'] * 4 + ['no'] * 6, 0.0, 1.0),
    # 2021 strips ground truth first, so these ten answers count as identical.
    (' Maybe', [' maybe'] * 5 + ['maybe '] * 5, 0.0, 0.0),
    ('maybe', [' maybe'] * 5 + ['maybe '] * 5, 0.0, 1.0),
    # Where they agree.
    ('2', ['2'] * 3 + ['3'] * 7, 0.9, 0.9),
])
def test_revisions_differ_where_the_2021_fix_changed_the_code(prediction, answers, acc_2016,
                                                               acc_2021):
    records = human_answers(*answers)
    assert vqa_question_accuracy(prediction, records) == pytest.approx(acc_2016)
    assert vqa_question_accuracy(prediction, records, '2016') == pytest.approx(acc_2016)
    assert vqa_question_accuracy(prediction, records, '2021') == pytest.approx(acc_2021)
    assert [r['answer'] for r in records] == answers  # the caller's records are not changed


def test_vqa_accuracy_passes_the_revision_and_rejects_unknown_ones():
    annotations = [{'question_id': 1, 'answer_type': 'yes/no', 'question_type': 'is the',
                    'answers': human_answers(*['yes'] * 10)}]
    predictions = [{'question_id': 1, 'answer': 'Yes'}]
    assert vqa_accuracy(predictions, annotations)['overall'] == 100.0
    assert vqa_accuracy(predictions, annotations, revision='2021')['overall'] == 0.0
    with pytest.raises(ValueError, match="revision='2019'"):
        vqa_accuracy(predictions, annotations, revision='2019')


# --- GQA normalisation -----------------------------------------------------------------------

def test_gqa_vqa_normalisation_applies_to_both_sides():
    questions = {'1': {'answer': '2'}, '2': {'answer': 'dog'}, '3': {'answer': 't-shirt'},
                 '4': {'answer': 'left'}}
    predictions = [{'question_id': '1', 'answer': 'two'}, {'question_id': '2',
                   'answer': 'the dog.'}, {'question_id': '3', 'answer': 't-shirt'},
                   {'question_id': '4', 'answer': ' Left '}]
    exact = gqa_accuracy(predictions, questions)
    assert exact['per_question'] == {'1': 0.0, '2': 0.0, '3': 100.0, '4': 100.0}
    vqa = gqa_accuracy(predictions, questions, normalization='vqa')
    assert vqa['per_question'] == {'1': 100.0, '2': 100.0, '3': 100.0, '4': 100.0}
    with pytest.raises(ValueError, match='normalization'):
        gqa_accuracy(predictions, questions, normalization='lavis')


def test_registered_metrics_take_revision_and_normalization(tmp_path):
    vqa_file = tmp_path / 'annotations.json'
    vqa_file.write_text(json.dumps({'annotations': [
        {'question_id': 1, 'answer_type': 'number', 'question_type': 'how many',
         'answers': human_answers(*['two'] * 4 + ['3'] * 6)}]}))
    for revision, expected in (('2016', 0.0), ('2021', 100.0)):
        metric = METRICS.build(dict(type='VQAAccuracyMetric', ann_file=str(vqa_file),
                                    revision=revision))
        metric.process(None, [{'question_id': 1, 'answer': 'two'}])
        assert metric.evaluate(1)['vqa/overall'] == expected
    gqa_file = tmp_path / 'gqa.json'
    gqa_file.write_text(json.dumps({'7': {'answer': '2'}}))
    for normalization, expected in (('exact', 0.0), ('vqa', 100.0)):
        metric = METRICS.build(dict(type='GQAAccuracyMetric', ann_file=str(gqa_file),
                                    normalization=normalization))
        metric.process(None, [{'question_id': '7', 'answer': 'Two'}])
        assert metric.evaluate(1) == {'gqa/accuracy': expected}


# --- the server's result file ----------------------------------------------------------------

def test_result_file_is_checked_then_written(tmp_path):
    path = tmp_path / 'out' / 'vqa_test_results.json'
    predictions = [{'question_id': 2, 'answer': 'no', 'score': 0.3},
                   {'question_id': 1, 'answer': 'yes'}]
    records = write_vqa_results(path, predictions, question_ids=[1, 2])
    assert json.loads(path.read_text()) == records == [
        {'question_id': 1, 'answer': 'yes'}, {'question_id': 2, 'answer': 'no'}]
    assert vqa_result_records(predictions) == [{'question_id': 2, 'answer': 'no'},
                                               {'question_id': 1, 'answer': 'yes'}]


@pytest.mark.parametrize('predictions, question_ids, match', [
    ([{'question_id': 1, 'answer': 'a'}, {'question_id': 1, 'answer': 'b'}], None,
     'more than once'),
    ([{'question_id': '1', 'answer': 'a'}], None, 'question_id": int'),
    ([{'question_id': True, 'answer': 'a'}], None, 'question_id": int'),
    ([{'question_id': 1, 'answer': 3}], None, 'answer": str'),
    ([{'question_id': 1, 'answer': 'a'}], [1, 2], r'miss 1 questions \(first: \[2\]\)'),
    ([{'question_id': 1, 'answer': 'a'}, {'question_id': 9, 'answer': 'b'}], [1],
     r'1 unknown ones \(first: \[9\]\)'),
])
def test_result_file_rejects_what_the_server_rejects(tmp_path, predictions, question_ids,
                                                     match):
    path = tmp_path / 'results.json'
    with pytest.raises(ValueError, match=match):
        write_vqa_results(path, predictions, question_ids)
    assert not path.exists()


# --- majority baselines ----------------------------------------------------------------------

def _annotation(qid, qtype, answer):
    return {'question_id': qid, 'question_type': qtype, 'answer_type': 'other',
            'multiple_choice_answer': answer, 'answers': human_answers(*[answer] * 10)}


TRAIN = [_annotation(1, 'what color is the', 'red'), _annotation(2, 'what color is the', 'red'),
         _annotation(3, 'what color is the', 'blue'), _annotation(4, 'is there a', 'yes'),
         _annotation(5, 'is there a', 'no'), _annotation(6, 'is there a', 'no'),
         _annotation(7, 'is the', 'small'), _annotation(8, 'is the', 'large')]


def test_majority_answers_overall_per_type_and_ties():
    table = majority_answers(TRAIN)
    assert table.overall == 'no'  # red and no both twice: the alphabetically first wins
    assert table.per_type == {'what color is the': 'red', 'is there a': 'no',
                              'is the': 'large'}
    assert table.type_of('Is there a red circle?') == 'is there a'  # longest prefix
    assert table.type_of('Is the circle small?') == 'is the'
    assert table.type_of('Isthe circle small?') is None
    assert table.answer(None) == 'no'
    with pytest.raises(ValueError, match='multiple_choice_answer'):
        majority_answers([{'question_type': 'is the'}])


def test_vqa_and_gqa_majority_baselines():
    evaluation = [_annotation(11, 'what color is the', 'red'),
                  _annotation(12, 'is there a', 'yes'), _annotation(13, 'is the', 'large'),
                  _annotation(14, 'how many', '2')]
    result = vqa_majority_baseline(TRAIN, evaluation)
    assert result['overall_prior'] == 0.0
    assert result['per_type_prior'] == pytest.approx(50.0)  # red and large right
    questions = {'a': {'question': 'What color is the star?', 'answer': 'red'},
                 'b': {'question': 'Is there a cross?', 'answer': 'no'},
                 'c': {'question': 'Which side?', 'answer': 'left'}}
    result = gqa_majority_baseline(TRAIN, questions)
    assert result['overall_prior'] == pytest.approx(100 / 3)
    assert result['per_type_prior'] == pytest.approx(200 / 3)
    assert result['per_type_per_question'] == {'a': 100.0, 'b': 100.0, 'c': 0.0}


# --- readers ---------------------------------------------------------------------------------

def _vqav2(root, split='train', layout='train', **kwargs):
    return VQAv2Dataset(root, f'vqa/v2_OpenEnded_mscoco_{split}_questions.json',
                        f'vqa/v2_mscoco_{split}_annotations.json', split=layout,
                        image_size=SIZE,
                        image_pattern=f'images/toyworld_vqa_{split}_{{image_id:06d}}.png',
                        **kwargs)


def test_vqav2_reader_serves_toyworld_like_blips_vqa_files(tiny_toyworld):
    official = _vqav2(tiny_toyworld)
    blip = VQADataset(tiny_toyworld, 'annotations/vqa_train.json', image_size=SIZE)
    assert len(official) == len(blip)
    for index in (0, len(blip) - 1):
        ours, theirs = official[index], blip[index]
        assert set(ours) == set(theirs) == {'image', 'question', 'answers', 'weights'}
        assert (ours['question'], ours['answers'], ours['weights']) == \
            (theirs['question'], theirs['answers'], theirs['weights'])
        assert official.media_path(index) == blip.media_path(index)
    batch = vqa_train_collate([official[0], blip[1]])
    assert batch['image'].shape == (2, 3, SIZE, SIZE)
    assert int(batch['answer_counts'].sum()) == len(batch['answers']) == len(batch['weights'])

    test = _vqav2(tiny_toyworld, 'test', 'test', answer_list_file='annotations/answer_list.json')
    assert set(test[0]) == {'image', 'question', 'question_id'}
    assert [a['question_id'] for a in test.annotations()] == \
        [test[i]['question_id'] for i in range(len(test))]
    assert 'yes' in test.answer_list
    assert len(test.limit(3)) == 3 and len(test.annotations()) == 3


def test_vqav2_reader_defaults_to_coco_file_names(tmp_path):
    (tmp_path / 'q.json').write_text(json.dumps({'data_subtype': 'val2014', 'questions': [
        {'question_id': 42000, 'image_id': 42, 'question': 'What is it?'}]}))
    dataset = VQAv2Dataset(tmp_path, 'q.json', split='test', image_root='val2014')
    assert dataset.media_path(0) == tmp_path / 'val2014' / 'COCO_val2014_000000000042.jpg'
    with pytest.raises(BadSampleError, match='COCO_val2014_000000000042.jpg'):
        dataset[0]
    with pytest.raises(ValueError, match='no annotation_file'):
        dataset.annotations()
    with pytest.raises(ValueError, match='image_pattern'):
        VQAv2Dataset(tmp_path, 'q.json', split='test', image_pattern='{image}.jpg')
    with pytest.raises(ValueError, match='needs annotation_file'):
        VQAv2Dataset(tmp_path, 'q.json')


def _edit_json(path, edit):
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize('file, edit, problem', [
    ('vqa/v2_OpenEnded_mscoco_train_questions.json',
     lambda d: d['questions'][2].pop('image_id'), "field 'image_id' is missing"),
    ('vqa/v2_OpenEnded_mscoco_train_questions.json',
     lambda d: d['questions'][2].update(question_id='x'), "field 'question_id' holds 'x'"),
    ('vqa/v2_mscoco_train_annotations.json',
     lambda d: d['annotations'][2].update(answers=['yes']), "field 'answers'"),
    ('vqa/v2_OpenEnded_mscoco_train_questions.json',
     lambda d: d['questions'][2].update(question_id=-5), 'has no annotation'),
])
def test_vqav2_bad_records_name_file_and_record(tiny_toyworld, tmp_path, file, edit, problem):
    world = shutil.copytree(tiny_toyworld, tmp_path / 'world')
    _edit_json(world / file, edit)
    with pytest.raises(BadSampleError, match=problem) as error:
        _vqav2(world)
    assert error.value.record_index == 2 and 'Fix:' in str(error.value)
    assert error.value.file == str(world / file)


def test_vqav2_file_without_questions_list(tmp_path):
    (tmp_path / 'q.json').write_text(json.dumps([{'question_id': 1}]))
    with pytest.raises(BadSampleError, match="no non-empty 'questions' list"):
        VQAv2Dataset(tmp_path, 'q.json', split='test')


def _visual_genome(root, qas_by_image):
    for folder, image_id in (('VG_100K', 1), ('VG_100K_2', 2)):
        (root / 'vg' / folder).mkdir(parents=True)
        Image.new('RGB', (40, 30), 'red').save(root / 'vg' / folder / f'{image_id}.jpg')
    entries = [{'id': image_id, 'qas': [dict(qa, image_id=image_id, qa_id=10 * image_id + k)
                                        for k, qa in enumerate(qas)]}
               for image_id, qas in qas_by_image]
    (root / 'question_answers.json').write_text(json.dumps(entries))


def test_visual_genome_qa_items_are_weighted_vqa_training_items(tmp_path):
    _visual_genome(tmp_path, [(1, [{'question': 'What color is the car?', 'answer': 'Red.'}]),
                              (3, []),
                              (2, [{'question': 'How many dogs?', 'answer': 'Two.'},
                                   {'question': 'Where?', 'answer': 'On the table.'}])])
    dataset = VisualGenomeQADataset(tmp_path, image_root='vg', image_size=SIZE)
    assert len(dataset) == 3
    assert [dataset[i]['answers'] for i in range(3)] == [['red'], ['2'], ['on table']]
    assert dataset[1]['weights'] == [0.2] and dataset[1]['question'] == 'how many dogs?'
    assert dataset.media_path(1) == tmp_path / 'vg' / 'VG_100K_2' / '2.jpg'
    raw = VisualGenomeQADataset(tmp_path, image_root='vg', image_size=SIZE,
                                answer_cleaning='none')
    assert raw[2]['answers'] == ['On the table.']
    batch = vqa_train_collate([dataset[0], dataset[1]])
    assert batch['weights'].tolist() == pytest.approx([0.2, 0.2])
    assert len(dataset.limit(1)) == 1


def test_visual_genome_bad_records(tmp_path):
    _visual_genome(tmp_path, [(1, [{'question': 'Why?', 'answer': 'yes'}]),
                              (2, [{'question': 'What?', 'answer': 'A.'},
                                   {'question': 'Who?'}])])
    with pytest.raises(BadSampleError, match="field 'answer' is missing") as error:
        VisualGenomeQADataset(tmp_path, image_root='vg')
    assert error.value.record_index == 2  # counted over the QA pairs of all images
    _edit_json(tmp_path / 'question_answers.json', lambda d: d[1]['qas'].pop())
    with pytest.raises(BadSampleError, match="answer 'A.' is empty once cleaned") as error:
        VisualGenomeQADataset(tmp_path, image_root='vg')
    assert error.value.record_index == 1
    skipping = VisualGenomeQADataset(tmp_path, image_root='vg', on_bad_sample='skip')
    assert len(skipping) == 1 and skipping.dropped_references == 1
    _edit_json(tmp_path / 'question_answers.json', lambda d: d[0].pop('qas'))
    with pytest.raises(BadSampleError, match="field 'qas' is missing"):
        VisualGenomeQADataset(tmp_path, image_root='vg')


def test_gqa_and_blip_vqa_readers_limit_and_expose_gold_answers(tiny_toyworld):
    gqa = GQADataset(tiny_toyworld, 'gqa/testdev_balanced_questions.json', image_ext='.png',
                     image_size=SIZE, answer_list_file='annotations/answer_list.json')
    questions = json.loads((tiny_toyworld / 'gqa/testdev_balanced_questions.json').read_text())
    assert gqa.gold_answers() == {qid: {'question': q['question'], 'answer': q['answer']}
                                  for qid, q in questions.items()}
    gqa.limit(2)
    assert len(gqa) == 2 and list(gqa.gold_answers()) == list(questions)[:2]
    assert gqa[1]['question_id'] == list(questions)[1] and 'no' in gqa.answer_list
    blip = VQADataset(tiny_toyworld, 'annotations/vqa_test.json', split='test', image_size=SIZE)
    assert len(blip.limit(4)) == 4


# --- ToyWorld VQA splits ---------------------------------------------------------------------

def test_default_vqa_splits_are_large_enough_to_separate_from_the_prior():
    spec = ToyWorldSpec()
    assert (spec.n_vqa_train, spec.n_vqa_val, spec.n_vqa_test) == (500, 100, 100)


def _hashes(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob('*') if p.is_file()}


VQA_FILES = ('vqa/', 'gqa/', 'annotations/vqa_', 'annotations/answer_list.json',
             'images/toyworld_vqa_', 'toyworld_spec.json', 'DONE',
             'vocab/')  # the vocabulary may grow with new words (the default spec's did not)


def test_resizing_the_vqa_splits_changes_no_other_file(tmp_path):
    small = dataclasses.replace(ToyWorldSpec.tiny(seed=2), n_vqa_train=2, n_vqa_val=1,
                                n_vqa_test=1)
    large = dataclasses.replace(small, n_vqa_train=7, n_vqa_val=3, n_vqa_test=2)
    generate_toyworld(small, tmp_path / 'small')
    generate_toyworld(large, tmp_path / 'large')
    before, after = _hashes(tmp_path / 'small'), _hashes(tmp_path / 'large')
    others = {name: digest for name, digest in before.items() if not name.startswith(VQA_FILES)}
    assert others and {name: after.get(name) for name in others} == others
    assert {name for name in after if not name.startswith(VQA_FILES)} == set(others)
    shared = [name for name in before if name.startswith('images/toyworld_vqa_train_')]
    assert len(shared) == 2 and all(after[name] == before[name] for name in shared)
