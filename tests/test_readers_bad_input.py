"""Readers facing bad input: errors name the file, the record and the fix; skip mode reports."""
import json
import shutil

import pytest
from torch.utils.data import DataLoader

from tasks.datasets import (BadSampleError, CaptionEvalDataset, GQADataset,
                            ImageTextPairDataset, RetrievalEvalDataset, VideoQADataset,
                            VideoRetrievalDataset, VQADataset)

SIZE = 16
IMAGE_READERS = {
    'pairs': ('annotations/coco_karpathy_train.json',
              lambda root, ann, **kw: ImageTextPairDataset(root, ann, image_size=SIZE, **kw)),
    'retrieval': ('annotations/flickr30k_test.json',
                  lambda root, ann, **kw: RetrievalEvalDataset(root, ann, image_size=SIZE, **kw)),
    'caption': ('annotations/coco_karpathy_val.json',
                lambda root, ann, **kw: CaptionEvalDataset(root, ann, image_size=SIZE, **kw)),
    'vqa_train': ('annotations/vqa_train.json',
                  lambda root, ann, **kw: VQADataset(root, ann, image_size=SIZE, **kw)),
    'vqa_test': ('annotations/vqa_test.json',
                 lambda root, ann, **kw: VQADataset(root, ann, split='test', image_size=SIZE,
                                                    **kw)),
    'gqa': ('gqa/testdev_balanced_questions.json',
            lambda root, ann, **kw: GQADataset(root, ann, image_ext='.png', image_size=SIZE,
                                               **kw)),
}
VIDEO_READERS = {
    'video_retrieval': ('msrvtt/msrvtt_test.jsonl',
                        lambda root, ann, **kw: VideoRetrievalDataset(
                            root, ann, video_root='msrvtt/videos', num_frames=4,
                            image_size=SIZE, **kw)),
    'video_qa': ('msrvtt/msrvtt_qa_test.json',
                 lambda root, ann, **kw: VideoQADataset(root, ann, video_root='msrvtt/videos',
                                                        num_frames=4, image_size=SIZE, **kw)),
}
ALL_READERS = {**IMAGE_READERS, **VIDEO_READERS}
REQUIRED_FIELD = {'pairs': 'caption', 'retrieval': 'caption', 'caption': 'image',
                  'vqa_train': 'answer', 'vqa_test': 'question_id', 'gqa': 'imageId',
                  'video_retrieval': 'clip_name', 'video_qa': 'question'}


@pytest.fixture
def world(tiny_toyworld, tmp_path):
    """A private copy of the tiny ToyWorld that a test may damage."""
    return shutil.copytree(tiny_toyworld, tmp_path / 'world')


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _edit_record(path, index, edit):
    """Apply ``edit`` to record ``index`` of a JSON list, JSON object or JSON-lines file."""
    if path.suffix == '.jsonl':
        records = [json.loads(line) for line in path.read_text().splitlines()]
        edit(records[index])
        path.write_text(''.join(json.dumps(r) + '\n' for r in records))
        return
    data = json.loads(path.read_text())
    edit(data[index] if isinstance(data, list) else list(data.values())[index])
    path.write_text(json.dumps(data))


def _assert_names(error, ann_file, index, media=None):
    message = str(error)
    assert str(ann_file) in message and f'record {index}' in message and 'Fix:' in message
    assert error.file == str(ann_file) and error.record_index == index
    if media is not None:
        assert str(media) in message


@pytest.mark.parametrize('reader', sorted(IMAGE_READERS))
@pytest.mark.parametrize('damage', ['corrupt', 'missing'])
def test_bad_image_names_file_and_record(world, reader, damage):
    ann, build = IMAGE_READERS[reader]
    dataset = build(world, ann)
    image = dataset.media_path(2)
    if damage == 'corrupt':
        _truncate(image)
    else:
        image.unlink()
    with pytest.raises(BadSampleError) as error:
        dataset[2]
    _assert_names(error.value, world / ann, 2, media=image)


@pytest.mark.parametrize('reader', sorted(VIDEO_READERS))
@pytest.mark.parametrize('damage', ['truncated', 'missing'])
def test_bad_video_names_file_and_record(world, reader, damage):
    ann, build = VIDEO_READERS[reader]
    dataset = build(world, ann)
    video = dataset.media_path(0)
    if damage == 'truncated':
        _truncate(video)
    else:
        video.unlink()
    with pytest.raises(BadSampleError) as error:
        dataset[0]
    _assert_names(error.value, world / ann, 0, media=video)


@pytest.mark.parametrize('reader', sorted(ALL_READERS))
def test_record_missing_a_field_fails_at_construction(world, reader):
    ann, build = ALL_READERS[reader]
    field = REQUIRED_FIELD[reader]
    _edit_record(world / ann, 1, lambda record: record.pop(field))
    with pytest.raises(BadSampleError, match=repr(field)) as error:
        build(world, ann)
    _assert_names(error.value, world / ann, 1)


def test_field_of_wrong_type_fails_at_construction(world):
    ann, build = IMAGE_READERS['retrieval']
    _edit_record(world / ann, 3, lambda record: record.update(caption='one string'))
    with pytest.raises(BadSampleError, match='list of non-empty strings') as error:
        build(world, ann)
    _assert_names(error.value, world / ann, 3)


@pytest.mark.parametrize('reader', sorted(set(ALL_READERS) - {'video_retrieval'}))
def test_malformed_json_names_the_file(world, reader):
    ann, build = ALL_READERS[reader]
    _truncate(world / ann)
    with pytest.raises(BadSampleError, match='malformed JSON') as error:
        build(world, ann)
    assert str(world / ann) in str(error.value) and 'Fix:' in str(error.value)


def test_malformed_jsonl_line_names_the_record(world):
    ann, build = VIDEO_READERS['video_retrieval']
    lines = (world / ann).read_text().splitlines()
    lines[2] = lines[2][:-3]
    (world / ann).write_text('\n'.join(lines) + '\n')
    with pytest.raises(BadSampleError, match='line 3') as error:
        build(world, ann)
    _assert_names(error.value, world / ann, 2)


def test_missing_annotation_file(world):
    with pytest.raises(BadSampleError, match='cannot read the annotation file'):
        RetrievalEvalDataset(world, 'annotations/no_such_file.json')


def test_caption_image_without_ground_truth_id(world):
    ann = 'annotations/coco_karpathy_val.json'
    _edit_record(world / ann, 4, lambda record: record.update(image='images/no_digits.png'))
    with pytest.raises(BadSampleError, match='cannot read an image id') as error:
        CaptionEvalDataset(world, ann)
    _assert_names(error.value, world / ann, 4)


def test_skip_mode_returns_next_good_sample_and_reports(world, monkeypatch):
    warnings = []
    monkeypatch.setattr('tasks.datasets.base.print_log',
                        lambda message, **kwargs: warnings.append((message, kwargs)))
    ann, build = IMAGE_READERS['retrieval']
    dataset = build(world, ann, on_bad_sample='skip')
    bad_image = dataset.media_path(1)
    _truncate(bad_image)
    assert dataset[1]['image_index'] == 2
    assert dataset[1]['image_index'] == 2  # the same answer every time
    report = dataset.bad_sample_report()
    assert (report.count, report.total, report.first_files) == (1, len(dataset),
                                                                [str(bad_image)])
    assert len(warnings) == 1 and str(bad_image) in warnings[0][0]
    assert warnings[0][1]['level'] >= 30  # logging.WARNING


def test_skip_mode_counts_across_dataloader_workers(world):
    ann, build = IMAGE_READERS['retrieval']
    dataset = build(world, ann, on_bad_sample='skip')
    bad = [dataset.media_path(0), dataset.media_path(3)]
    for image in bad:
        image.unlink()
    loader = DataLoader(dataset, batch_size=2, num_workers=2)
    indices = [i for batch in loader for i in batch['image_index'].tolist()]
    assert indices == [1, 1, 2, 1]  # 0 → 1; 3 → (wrapping, 0 is bad) 1
    report = dataset.bad_sample_report()
    assert report.count == 2 and sorted(report.first_files) == sorted(map(str, bad))


def test_skip_mode_skips_a_truncated_video(world):
    ann, build = VIDEO_READERS['video_retrieval']
    dataset = build(world, ann, on_bad_sample='skip')
    _truncate(dataset.media_path(0))
    assert dataset[0]['video_index'] == 1
    assert dataset.bad_sample_report().count == 1


def test_skip_mode_fails_when_every_sample_is_bad(world):
    ann, build = IMAGE_READERS['retrieval']
    dataset = build(world, ann, on_bad_sample='skip')
    for index in range(len(dataset)):
        dataset.media_path(index).unlink()
    with pytest.raises(BadSampleError, match='are bad'):
        dataset[0]
    assert dataset.bad_sample_report().count == len(dataset)


def test_unknown_policy_is_rejected(world):
    ann, build = IMAGE_READERS['retrieval']
    with pytest.raises(ValueError, match='on_bad_sample'):
        build(world, ann, on_bad_sample='ignore')
