"""Zero-shot video QA: MSRVTT-QA / MSVD-QA readers, frame-token concatenation, the
``video_qa`` evaluator's accuracy, baseline, counts and cache, and the paper rows."""
import json
import shutil

import pytest
import torch

from harness.core.paper import headline_numbers
from harness.core.registry import DATASETS, TASKS
from tasks.datasets import BadSampleError, MSVDQADataset, VideoQADataset
from tasks.metrics.vqa_answer_processing import normalize_predicted_answer
from tasks.text import pre_question
from tasks.datasets import video_frames as frames_module
from tasks.video.qa import encode_frames

SIZE = 32  # the tiny ToyWorld's frame size
QA = 'msrvtt/msrvtt_qa_test.json'


@pytest.fixture(scope='module')
def model(tiny_vqa_model):
    """The shared tiny random BlipVQA (conftest)."""
    return tiny_vqa_model


@pytest.fixture
def world(tiny_toyworld, tmp_path):
    """A private copy of the tiny ToyWorld that a test may change."""
    return shutil.copytree(tiny_toyworld, tmp_path / 'world')


def questions(root, ann=QA, **options):
    return VideoQADataset(root, ann, video_root='msrvtt/videos', image_size=SIZE,
                          **dict(dict(num_frames=4, answer_list_file='annotations/answer_list.json',
                                      train_ann_file='vqa/v2_mscoco_train_annotations.json'),
                                 **options))


def _write(path, content):
    path.write_text(json.dumps(content))
    return path


# --- readers ---------------------------------------------------------------------------

def test_toyworld_writes_the_official_msrvtt_qa_format(tiny_toyworld):
    records = json.loads((tiny_toyworld / QA).read_text())
    assert all(set(r) == {'video_id', 'question', 'answer', 'id'} for r in records)
    assert [r['id'] for r in records] == list(range(len(records)))
    answer_list = set(json.loads((tiny_toyworld / 'annotations/answer_list.json').read_text()))
    assert {r['answer'] for r in records} <= answer_list  # answerable by the image VQA model


def test_msrvtt_qa_reader_items_ids_and_answer_vocabulary(world):
    _write(world / 'train_qa.json', [
        {'video_id': 0, 'question': 'q', 'answer': 'red', 'id': 0, 'category_id': 2},
        {'video_id': 0, 'question': 'q', 'answer': 'blue', 'id': 1, 'category_id': 2},
        {'video_id': 1, 'question': 'q', 'answer': 'blue', 'id': 2, 'category_id': 2}])
    dataset = questions(world, answer_list_file=None, train_ann_file='train_qa.json')
    records = json.loads((world / QA).read_text())
    assert len(dataset) == len(records) and DATASETS.get('MSRVTTQADataset') is VideoQADataset
    item = dataset[1]
    assert item['video'].shape == (4, 3, SIZE, SIZE)
    assert item['question'] == pre_question(records[1]['question'])
    assert item['question_id'] == records[1]['id'] and item['answer'] == records[1]['answer']
    assert dataset.media_path(1) == world / 'msrvtt/videos' / f'video{records[1]["video_id"]}.mp4'
    assert dataset.answer_list == ['blue', 'red']  # most frequent first
    assert dataset.num_videos() == len({r['video_id'] for r in records})
    limited = dataset.limit(2)
    assert len(limited) == 2 and limited.gold_answers() == dataset.gold_answers()[:2]


def test_msvd_qa_reader_maps_video_ids_through_youtube_mapping(world):
    clips = world / 'YouTubeClips'
    clips.mkdir()
    shutil.copy(world / 'msrvtt/videos/video0.mp4', clips / '-4wsuPCjDBc_5_15.avi')
    (world / 'youtube_mapping.txt').write_text('-4wsuPCjDBc_5_15 vid1\nabc_1_2 vid2\n')
    _write(world / 'test_qa.json', [{'video_id': 1, 'question': 'what is it?',
                                     'answer': 'circle', 'id': 7}])
    dataset = MSVDQADataset(world, 'test_qa.json', num_frames=2, image_size=SIZE)
    assert dataset.media_path(0) == clips / '-4wsuPCjDBc_5_15.avi'
    assert dataset[0]['video'].shape == (2, 3, SIZE, SIZE) and dataset[0]['question_id'] == 7
    _write(world / 'test_qa.json', [{'video_id': 9, 'question': 'q', 'answer': 'a'}])
    with pytest.raises(BadSampleError, match=r'video_id 9 \(vid9\) is not in the mapping'):
        MSVDQADataset(world, 'test_qa.json')
    (world / 'youtube_mapping.txt').write_text('just-one-field\n')
    with pytest.raises(BadSampleError, match='line 1 .*not "<YouTube clip name> vid<N>"'):
        MSVDQADataset(world, 'test_qa.json')


@pytest.mark.parametrize('record, message', [
    ({'question': 'q', 'answer': 'a'}, "field 'video_id' is missing"),
    ({'video_id': 0, 'question': 'q', 'answer': ''}, "field 'answer' holds"),
    ({'video_id': True, 'question': 'q', 'answer': 'a'}, "field 'video_id' holds"),
])
def test_bad_records_are_named(world, record, message):
    path = _write(world / 'bad_qa.json', [{'video_id': 0, 'question': 'q', 'answer': 'a'}, record])
    with pytest.raises(BadSampleError, match=message) as error:
        questions(world, 'bad_qa.json')
    assert str(path) in str(error.value) and 'record 1' in str(error.value)


def test_repeated_question_ids_are_refused(world):
    _write(world / 'dup_qa.json', [{'video_id': 0, 'question': 'q', 'answer': 'a', 'id': 5},
                                   {'video_id': 1, 'question': 'q', 'answer': 'a', 'id': 5}])
    with pytest.raises(BadSampleError, match="question id 5 repeats record 0"):
        questions(world, 'dup_qa.json')


def test_missing_clip_raises_or_is_skipped_with_its_questions(world, model, monkeypatch):
    monkeypatch.setattr('tasks.video.clips.print_log', lambda *args, **kwargs: None)
    (world / 'msrvtt/videos/video0.mp4').unlink()
    with pytest.raises(BadSampleError, match='video0.mp4 does not exist'):
        questions(world)[0]
    records = json.loads((world / QA).read_text())
    on_clip0 = sum(r['video_id'] == 0 for r in records)
    result = TASKS.get('video_qa')(model, questions(world, on_bad_sample='skip'),
                                   inference=dict(k=4), batch_size=4)
    assert result.counts['skipped_clips'] == 1
    assert result.counts['skipped_questions'] == on_clip0
    assert result.counts['questions'] == len(records) - on_clip0


# --- the evaluator ---------------------------------------------------------------------

def test_frame_tokens_concatenate_the_frames_encoded_one_by_one(tiny_toyworld, model):
    dataset = questions(tiny_toyworld)
    batch = {'video': torch.stack([dataset[0]['video'], dataset[3]['video']])}
    with torch.no_grad():
        joined = encode_frames(model, batch, 'cpu')
        per_frame = [[model.encode_image(frame[None])[0] for frame in clip]
                     for clip in batch['video']]
    tokens, width = per_frame[0][0].shape
    expected = torch.stack([torch.cat(frames) for frames in per_frame])
    assert joined.shape == (2, 4 * tokens, width)
    torch.testing.assert_close(joined, expected, rtol=1e-5, atol=1e-5)


def test_accuracy_is_exact_match_after_vqa_normalisation(tiny_toyworld, model, tmp_path):
    dataset = questions(tiny_toyworld)
    result = TASKS.get('video_qa')(model, dataset, inference=dict(k=8), batch_size=5,
                                   work_dir=tmp_path, cache_key='ckpt')
    predictions = result.outputs['predictions']
    gold = {g['question_id']: g['answer'] for g in dataset.gold_answers()}
    hits = {p['question_id']: 100.0 * (normalize_predicted_answer(p['answer'])
                                       == normalize_predicted_answer(gold[p['question_id']]))
            for p in predictions}
    assert result.metrics['accuracy'].value == pytest.approx(sum(hits.values()) / len(hits))
    assert result.per_sample['accuracy'] == {str(q): v for q, v in hits.items()}
    assert set(p['answer'] for p in predictions) <= set(dataset.answer_list)
    assert result.counts == {'questions': len(dataset), 'videos': dataset.num_videos(),
                             'short_clips': 0, 'skipped_clips': 0, 'frames_per_video': 4,
                             'skipped_questions': 0}
    written = json.loads((tmp_path / 'video_qa_rank_result.json').read_text())
    assert written == predictions
    majority = result.outputs['majority_baseline']['answer']
    assert result.baselines['accuracy'] == pytest.approx(
        100.0 * sum(normalize_predicted_answer(a) == majority for a in gold.values())
        / len(gold))
    assert majority in result.baseline_basis


def test_a_normalised_match_counts(world, model, monkeypatch):
    """Answers differing only by case, articles or number words still match."""
    records = [{'video_id': 0, 'question': 'how many?', 'answer': 'Two', 'id': 0},
               {'video_id': 1, 'question': 'what?', 'answer': 'a circle', 'id': 1},
               {'video_id': 1, 'question': 'what?', 'answer': 'square', 'id': 2}]
    _write(world / 'norm_qa.json', records)
    _write(world / 'list.json', ['2', 'circle', 'star'])
    monkeypatch.setattr(type(model), 'rank_answers',
                        lambda self, states, atts, candidates, **kw: torch.tensor([0, 1, 1]))
    result = TASKS.get('video_qa')(model, questions(world, 'norm_qa.json',
                                                    answer_list_file='list.json'), batch_size=3)
    assert result.per_sample['accuracy'] == {'0': 100.0, '1': 100.0, '2': 0.0}


def test_second_evaluation_decodes_nothing(tiny_toyworld, model, tmp_path, monkeypatch):
    dataset = questions(tiny_toyworld).limit(5)
    first = TASKS.get('video_qa')(model, dataset, inference=dict(k=4), batch_size=2,
                                  work_dir=tmp_path, cache_key='ckpt')
    assert first.throughput  # computed

    def refuse(*args, **kwargs):
        raise AssertionError('a clip was opened or decoded again')
    monkeypatch.setattr(frames_module, 'open_clip', refuse)
    again = TASKS.get('video_qa')(model, questions(tiny_toyworld).limit(5), inference=dict(k=4),
                                  batch_size=3, work_dir=tmp_path, cache_key='ckpt')
    assert again.outputs['predictions'] == first.outputs['predictions']
    assert again.throughput == {}


def test_paper_rows_are_registered():
    rows = {(n.task, n.dataset): n for n in headline_numbers()}
    assert rows[('video_qa', 'msrvtt_qa')].value == 19.2
    assert rows[('video_qa', 'msvd_qa')].value == 35.2
    assert 'Table 11' in rows[('video_qa', 'msrvtt_qa')].source
