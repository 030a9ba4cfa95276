"""Readers facing bad input: errors name the file, the record and the fix; skip mode reports."""
import io
import json
import pathlib
import shutil
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from torch.utils.data import DataLoader

from tasks.datasets import (BadSampleError, CaptionEvalDataset, GQADataset,
                            ImageTextPairDataset, RetrievalEvalDataset, VideoQADataset,
                            VideoRetrievalDataset, VQADataset)
from tasks.datasets.media import read_image

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


# ---------------------------------------------------------------- images: depth, corruption, bombs
def _gradient(dtype, high):
    return (np.linspace(0, high, 48 * 40).reshape(40, 48)).astype(dtype)


@pytest.mark.parametrize('mode, file_format, values', [
    ('I;16', 'PNG', _gradient(np.uint16, 65535)),
    ('I;16B', 'TIFF', _gradient(np.uint16, 65535)),
    ('I', 'TIFF', _gradient(np.int32, 65535)),
    ('F', 'TIFF', _gradient(np.float32, 1.0)),
])
def test_high_bit_depth_grey_is_scaled_to_eight_bits(tmp_path, mode, file_format, values):
    path = tmp_path / f'grey.{file_format.lower()}'
    if mode == 'I;16B':  # (Pillow's convert to I;16B clips at 255)
        image = Image.frombytes(mode, values.shape[::-1], values.astype('>u2').tobytes())
    else:
        image = Image.fromarray(values).convert(mode)
    image.save(path, file_format)
    assert Image.open(path).mode in (mode, 'I;16')  # PNG reads I;16B back as I;16
    rgb = np.asarray(read_image(path, 'ann.json', 0))
    scale = 255.0 if mode == 'F' else 255.0 / 65535
    expected = np.rint(values.astype(np.float64) * scale).astype(np.uint8)
    assert rgb.shape == (40, 48, 3) and (rgb == expected[..., None]).all()
    assert rgb.min() == 0 and rgb.max() == 255


def test_grey_image_of_unknown_scale_is_a_bad_sample(tmp_path):
    path = tmp_path / 'grey.tiff'
    Image.fromarray(_gradient(np.float32, 300.0)).save(path)
    with pytest.raises(BadSampleError, match='only 0..1 has a known scale'):
        read_image(path, 'ann.json', 0)


def _jpeg(**options):
    rng = np.random.default_rng(0)
    pixels = np.cumsum(rng.integers(0, 40, (96, 128, 3)), axis=1).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, 'JPEG', **options)
    return buffer.getvalue()


def _corrupt_scan(data):
    """Overwrite the middle third of the scan data with random bytes (no 0xFF)."""
    start = data.index(b'\xff\xda') + 2 + int.from_bytes(data[data.index(b'\xff\xda') + 2:][:2],
                                                         'big')
    end = data.rindex(b'\xff\xd9')
    third = (end - start) // 3
    noise = np.random.default_rng(1).integers(0, 255, third, dtype=np.uint8).tobytes()
    return data[:start + third] + noise + data[start + 2 * third:]


def test_corrupt_jpeg_scan_is_a_bad_sample(world, monkeypatch):
    monkeypatch.setattr('tasks.datasets.base.print_log', lambda *args, **kwargs: None)
    corrupt = _corrupt_scan(_jpeg(quality=90))
    Image.open(io.BytesIO(corrupt)).load()  # Pillow decodes it without a word
    ann, build = IMAGE_READERS['pairs']
    dataset = build(world, ann)
    image = dataset.media_path(2)
    image.write_bytes(corrupt)
    with pytest.raises(BadSampleError, match='corrupt JPEG data') as error:
        dataset[2]
    _assert_names(error.value, world / ann, 2, media=image)
    skipping = build(world, ann, on_bad_sample='skip')
    next_good = next(i for i in range(3, len(dataset)) if dataset.media_path(i) != image)
    assert skipping[2]['index'] == next_good  # pairs 2.. sharing the image are bad too
    assert skipping.bad_sample_report().first_files[0] == str(image)


@pytest.mark.parametrize('options', [
    dict(quality=95), dict(quality=10, subsampling=2), dict(quality=75, optimize=True),
    dict(quality=80, restart_marker_blocks=3), dict(quality=85, progressive=True),
], ids=['q95', 'q10_420', 'optimized', 'restarts', 'progressive'])
@pytest.mark.parametrize('trailer', [b'', b'\x00trailing bytes after the image'],
                         ids=['plain', 'trailer'])
def test_sound_jpegs_decode_as_pillow_decodes_them(tmp_path, options, trailer):
    data = _jpeg(**options) + trailer
    path = tmp_path / 'sound.jpg'
    path.write_bytes(data)
    expected = np.asarray(Image.open(io.BytesIO(data)).convert('RGB'))
    assert (np.asarray(read_image(path, 'ann.json', 0)) == expected).all()


def _png_header(width, height):
    def chunk(kind, payload):
        return (struct.pack('>I', len(payload)) + kind + payload
                + struct.pack('>I', zlib.crc32(kind + payload)))
    header = struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) + chunk(b'IDAT', zlib.compress(
        b'\x00' * 64)) + chunk(b'IEND', b'')


@pytest.mark.parametrize('size, max_pixels', [(20000, None), (64, 3000)],
                         ids=['bomb_error', 'bomb_warning'])
def test_decompression_bomb_is_a_skippable_bad_sample(world, monkeypatch, size, max_pixels):
    monkeypatch.setattr('tasks.datasets.base.print_log', lambda *args, **kwargs: None)
    if max_pixels:
        monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', max_pixels)
    ann, build = IMAGE_READERS['retrieval']
    dataset = build(world, ann)
    image = dataset.media_path(1)
    image.write_bytes(_png_header(size, size))
    with pytest.raises(BadSampleError, match='too large to decode safely') as error:
        dataset[1]
    _assert_names(error.value, world / ann, 1, media=image)
    assert 'MAX_IMAGE_PIXELS' in str(error.value)
    skipping = build(world, ann, on_bad_sample='skip')
    assert skipping[1]['image_index'] == 2 and skipping.bad_sample_report().count == 1


# ---------------------------------------------------------------- annotation encodings
@pytest.mark.parametrize('encode, looks_like', [
    (lambda text: text.encode('utf-16'), 'UTF-16'),
    (lambda text: text.encode('utf-16-le'), 'UTF-16'),
    (lambda text: text.replace('a', 'é').encode('latin-1'), 'latin-1'),
    (lambda text: b'\x00\x01\x02\x03\xff\xfe' + text.encode(), 'binary'),
], ids=['utf16_bom', 'utf16_le', 'latin1', 'binary'])
@pytest.mark.parametrize('reader', ['retrieval', 'video_retrieval'])
def test_annotation_file_not_in_utf8(world, encode, looks_like, reader):
    ann, build = ALL_READERS[reader]
    path = world / ann
    path.write_bytes(encode(path.read_text()))
    with pytest.raises(BadSampleError, match='not UTF-8') as error:
        build(world, ann)
    message = str(error.value)
    assert str(path) in message and looks_like in message and 'Fix:' in message


@pytest.mark.parametrize('reader', sorted(VIDEO_READERS))
@pytest.mark.parametrize('num_frames', [0, -2])
def test_num_frames_below_one_fails_at_construction(world, reader, num_frames):
    ann = VIDEO_READERS[reader][0]
    cls = VideoRetrievalDataset if reader == 'video_retrieval' else VideoQADataset
    with pytest.raises(ValueError, match=f'num_frames={num_frames}.*>= 1'):
        cls(world, ann, video_root='msrvtt/videos', num_frames=num_frames)


# ---------------------------------------------------------------- captions that clean to nothing
EMPTY_CAPTION = '... !!!'


def test_training_caption_that_cleans_to_nothing_is_a_bad_sample(world, monkeypatch):
    monkeypatch.setattr('tasks.datasets.base.print_log', lambda *args, **kwargs: None)
    ann, build = IMAGE_READERS['pairs']
    _edit_record(world / ann, 1, lambda record: record.update(caption=EMPTY_CAPTION))
    dataset = build(world, ann)
    with pytest.raises(BadSampleError, match='empty once cleaned') as error:
        dataset[1]
    _assert_names(error.value, world / ann, 1)
    skipping = build(world, ann, on_bad_sample='skip')
    assert skipping[1]['index'] == 2 and skipping[1]['text']
    assert skipping.bad_sample_report().count == 1


def test_retrieval_reference_that_cleans_to_nothing(world, monkeypatch):
    monkeypatch.setattr('tasks.datasets.base.print_log', lambda *args, **kwargs: None)
    ann, build = IMAGE_READERS['retrieval']
    records = json.loads((world / ann).read_text())
    records[0]['caption'][0] = EMPTY_CAPTION
    records[1]['caption'] = [EMPTY_CAPTION]  # its image is left without references
    (world / ann).write_text(json.dumps(records))
    with pytest.raises(BadSampleError, match='empty once cleaned') as error:
        build(world, ann)
    _assert_names(error.value, world / ann, 0)

    skipping = build(world, ann, on_bad_sample='skip')
    captions = sum(len(record['caption']) for record in records)
    assert skipping.dropped_references == 2 and len(skipping.texts) == captions - 2
    assert skipping.record_indices == [0] + list(range(2, len(records)))
    assert all(skipping.texts) and len(skipping.img2txt[0]) == len(records[0]['caption']) - 1
    assert [skipping.txt2img[t] for t in skipping.img2txt[1]] == [1] * len(records[2]['caption'])
    assert skipping.media_path(1).name == pathlib.Path(records[2]['image']).name
    skipping.media_path(1).unlink()
    with pytest.raises(BadSampleError) as missing:
        skipping.load_item(1)
    assert missing.value.record_index == 2  # errors name the file's record, not the image index


def test_video_reference_that_cleans_to_nothing(world, monkeypatch):
    monkeypatch.setattr('tasks.datasets.base.print_log', lambda *args, **kwargs: None)
    ann, build = VIDEO_READERS['video_retrieval']
    _edit_record(world / ann, 2, lambda record: record.update(caption=EMPTY_CAPTION))
    with pytest.raises(BadSampleError, match='empty once cleaned') as error:
        build(world, ann)
    _assert_names(error.value, world / ann, 2)
    lines = (world / ann).read_text().splitlines()
    skipping = build(world, ann, on_bad_sample='skip')
    assert skipping.dropped_references == 1 and len(skipping.texts) == len(lines) - 1
    assert all(skipping.texts)
