"""``decode='device'``: evaluation items stay encoded and are decoded where the model runs.

Run on the CPU (the same code as on CUDA but for nvJPEG): images within a few 8-bit levels
of the PIL path, ToyWorld retrieval scores close to the default path's, bad files named.

Measured on these images (8-bit levels, the normalisation undone): torchvision's native
8-bit CPU resize at most 2 off, mean <= 0.005 (16-bit PNGs: mean 0.2, shifted rather than
rounded to 8 bits); the float resize CUDA uses at most 10 off on up-scaled noisy palette
images, mean <= 0.33. The control, resizing bilinearly instead of bicubically, is 1.3-3.5
levels off on average.
"""
import io
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import backbones  # noqa: F401  (registers the model)
from harness.core.model_api import CLIP_MEAN, CLIP_STD
from harness.core.registry import MODELS
from tasks.caption.evaluate import caption_dataset
from tasks.datasets import BadSampleError, CaptionEvalDataset, RetrievalEvalDataset
from tasks.datasets.device_decode import (EncodedImage, EncodedImages, ModelImageFormat,
                                          decode_to_model_input, images_on_device)
from tasks.datasets.media import decode_image
from tasks.retrieval import compute_retrieval_scores
from tasks.retrieval.cache import CACHE_DIRNAME
from tasks.transforms import build_image_transform

SIZE = 48  # ToyWorld's tiny images are 32 px: the evaluations resize them
RETRIEVAL_ANN = 'annotations/coco_karpathy_test.json'
# (max, mean) |difference| to the PIL path in 8-bit levels, per resize arithmetic.
TOLERANCE = {'native uint8': (2.0, 0.25), 'float, as on CUDA': (12.0, 0.4)}
SCORE_TOLERANCE = 0.03  # measured 0.009 (PNG and JPEG); bilinear resizing moves them 0.3-1.0


def _pixels(height=60, width=80, seed=0):
    """Smooth random colour with noise: a small photo-like image."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC))
    return (smooth + rng.normal(0, 20, smooth.shape)).clip(0, 255).astype(np.uint8)


def _encoded(image, file_format, **options):
    buffer = io.BytesIO()
    image.save(buffer, file_format, **options)
    return buffer.getvalue()


def _grey16():
    grey = np.asarray(Image.fromarray(_pixels()).convert('L')).astype(np.uint16) * 257
    return Image.fromarray(grey + np.arange(grey.size, dtype=np.uint16).reshape(grey.shape) % 200)


FILES = {
    'jpeg': lambda: _encoded(Image.fromarray(_pixels()), 'JPEG', quality=90),
    'jpeg_progressive': lambda: _encoded(Image.fromarray(_pixels()), 'JPEG', progressive=True),
    'jpeg_grey': lambda: _encoded(Image.fromarray(_pixels()).convert('L'), 'JPEG'),
    'jpeg_cmyk': lambda: _encoded(Image.fromarray(_pixels()).convert('CMYK'), 'JPEG'),
    'png': lambda: _encoded(Image.fromarray(_pixels()), 'PNG'),
    'png_rgba': lambda: _encoded(Image.fromarray(_pixels()).convert('RGBA'), 'PNG'),
    'png_palette': lambda: _encoded(Image.fromarray(_pixels()).convert('P'), 'PNG'),
    'png_16bit': lambda: _encoded(_grey16(), 'PNG'),
    'webp': lambda: _encoded(Image.fromarray(_pixels()), 'WEBP', lossless=True),
}


def _item(data: bytes, path='image.jpg', record_index=0) -> EncodedImage:
    return EncodedImage(torch.frombuffer(bytearray(data), dtype=torch.uint8), path, 'ann.json',
                        record_index)


def _levels(expected, got):
    """|difference| in 8-bit levels (the normalisation undone, float error rounded off)."""
    return ((expected - got).abs() * torch.tensor(CLIP_STD).view(3, 1, 1) * 255).round(decimals=3)


@pytest.fixture(params=sorted(TOLERANCE))
def resize_path(request, monkeypatch):
    """torchvision's native 8-bit CPU resize, or the float one CUDA (and non-AVX2 CPUs) use."""
    if request.param != 'native uint8':
        monkeypatch.setattr('torchvision.transforms.v2.functional._geometry.'
                            '_do_native_uint8_resize_on_cpu', lambda interpolation: False)
    return request.param


@pytest.mark.parametrize('size', [SIZE, 112], ids=['down', 'up'])
@pytest.mark.parametrize('name', sorted(FILES))
def test_device_path_on_cpu_is_close_to_pil(name, size, resize_path):
    data = FILES[name]()
    expected = build_image_transform(size, train=False)(decode_image(data, 'ann.json', 0, 'x'))
    batch = EncodedImages([_item(data)], ModelImageFormat(size, CLIP_MEAN, CLIP_STD, 'bicubic'))
    got = images_on_device(batch, 'cpu')
    assert got.shape == (1, 3, size, size) and got.dtype == torch.float32
    most, mean = TOLERANCE[resize_path]
    levels = _levels(expected, got[0])
    assert levels.max() <= most and levels.mean() <= mean
    bilinear = ModelImageFormat(size, CLIP_MEAN, CLIP_STD, 'bilinear')
    assert _levels(expected, decode_to_model_input(EncodedImages([_item(data)], bilinear),
                                                   'cpu')[0]).mean() > 3 * mean  # the control


def test_a_mixed_batch_keeps_its_order():
    files = [FILES['png'](), FILES['jpeg'](), _encoded(Image.fromarray(_pixels(30, 50, 1)), 'JPEG'),
             FILES['jpeg_grey'](), _encoded(Image.fromarray(_pixels(30, 50, 2)), 'PNG')]
    image_format = ModelImageFormat(SIZE, CLIP_MEAN, CLIP_STD, 'bicubic')
    together = decode_to_model_input(EncodedImages([_item(f) for f in files], image_format), 'cpu')
    for row, data in enumerate(files):
        alone = decode_to_model_input(EncodedImages([_item(data)], image_format), 'cpu')
        assert torch.equal(together[row], alone[0])


def test_float_batches_are_only_moved():
    images = torch.randn(2, 3, 8, 8)
    assert images_on_device(images, 'cpu') is images


# --- datasets and evaluations -------------------------------------------------------------

@pytest.fixture(scope='module')
def model(tiny_toyworld):
    """A tiny BLIP at 48 px whose scores react to its images (initializer range 0.2)."""
    torch.manual_seed(0)
    return MODELS.build(dict(
        type='Blip', vision=dict(type='BlipViT', arch='vit_tiny_patch8', image_size=SIZE),
        tokenizer=dict(type='BlipTokenizer', vocab=str(tiny_toyworld / 'vocab')),
        text_arch='tiny', losses=('itc', 'itm', 'lm'), queue_size=16, max_text_length=35,
        prompt='a picture of ', text_overrides=dict(initializer_range=0.2))).eval()


def _as_jpeg_split(root, ann_file, out):
    """A copy of a split whose images are JPEGs (absolute paths, so any data_root reads it)."""
    records = json.loads((root / ann_file).read_text())
    for record in records:
        jpeg = out / f'{record["image"].replace("/", "_")}.jpg'
        Image.open(root / record['image']).convert('RGB').save(jpeg, 'JPEG', quality=90)
        record['image'] = str(jpeg)
    (out / 'test.json').write_text(json.dumps(records))
    return out, 'test.json'


@pytest.mark.parametrize('stored', ['png', 'jpeg'])
def test_toyworld_retrieval_scores_with_device_decode_are_close(model, tiny_toyworld, tmp_path,
                                                                stored):
    root, ann = (tiny_toyworld, RETRIEVAL_ANN) if stored == 'png' else \
        _as_jpeg_split(tiny_toyworld, RETRIEVAL_ANN, tmp_path)
    scores = {}
    for name, options, work_dir in (
            ('cpu', {}, tmp_path / 'cache'), ('device', dict(decode='device'), tmp_path / 'cache'),
            ('bilinear', dict(preprocessing=dict(interpolation='bilinear')), None)):
        dataset = RetrievalEvalDataset(root, ann, image_size=SIZE, **options)
        scores[name] = compute_retrieval_scores(
            model, dataset, k=len(dataset.texts), batch_size=4, block_size=4,
            work_dir=work_dir, cache_key='tiny')
    for matrix in ('i2t', 't2i'):
        default, device = getattr(scores['cpu'], matrix), getattr(scores['device'], matrix)
        assert (default - device).abs().max() <= SCORE_TOLERANCE
        assert (default - getattr(scores['bilinear'], matrix)).abs().max() > 5 * SCORE_TOLERANCE
    # the device path's matrices are cached apart from the CPU path's
    assert len(list((tmp_path / 'cache' / CACHE_DIRNAME).iterdir())) == 2


def test_captions_of_device_decoded_images(model, tiny_toyworld, tmp_path):
    settings = dict(decoding=dict(num_beams=2, max_length=10, min_length=3), batch_size=4,
                    work_dir=tmp_path, cache_key='tiny')
    captions = {}
    for decode in ('cpu', 'device'):
        dataset = CaptionEvalDataset(tiny_toyworld, RETRIEVAL_ANN, image_size=SIZE, decode=decode)
        captions[decode], _ = caption_dataset(model, dataset, **settings)
    assert [c['image_id'] for c in captions['device']] == [c['image_id'] for c in captions['cpu']]
    assert all(c['caption'] for c in captions['device'])
    assert len(list(tmp_path.glob('captions_*.json'))) == 2  # cached apart


# --- bad input ------------------------------------------------------------------------------

@pytest.fixture
def world(tiny_toyworld, tmp_path):
    """A private copy of the tiny ToyWorld that a test may damage."""
    return shutil.copytree(tiny_toyworld, tmp_path / 'world')


@pytest.mark.parametrize('damage', ['truncated', 'not an image'])
def test_a_file_that_does_not_decode_is_named(world, damage):
    dataset = RetrievalEvalDataset(world, RETRIEVAL_ANN, image_size=SIZE, decode='device')
    bad = dataset.media_path(2)
    if damage == 'truncated':  # a JPEG: decoded in a batch of JPEGs, then one by one
        for index in range(4):
            path = dataset.media_path(index)
            Image.open(path).convert('RGB').save(path, 'JPEG')
        data = bad.read_bytes()
        bad.write_bytes(data[:len(data) // 2])
    else:
        bad.write_bytes(b'plain text, not pixels')
    batch = dataset.collate_fn([dataset[index] for index in range(4)])
    with pytest.raises(BadSampleError, match='corrupt or not an image') as error:
        images_on_device(batch['image'], 'cpu')
    assert error.value.media == str(bad) and error.value.record_index == 2
    assert f'{world / RETRIEVAL_ANN}, record 2' in str(error.value)


@pytest.mark.parametrize('damage', ['missing', 'empty'])
def test_missing_or_empty_file_is_named_when_read(world, damage):
    dataset = CaptionEvalDataset(world, RETRIEVAL_ANN, image_size=SIZE, decode='device')
    bad = dataset.media_path(1)
    bad.unlink() if damage == 'missing' else bad.write_bytes(b'')
    with pytest.raises(BadSampleError, match='does not exist' if damage == 'missing'
                       else 'is empty') as error:
        dataset[1]
    assert error.value.media == str(bad) and error.value.record_index == 1


def test_options_device_decode_cannot_serve_are_refused(tiny_toyworld):
    with pytest.raises(ValueError, match="on_bad_sample='raise'"):
        RetrievalEvalDataset(tiny_toyworld, RETRIEVAL_ANN, decode='device', on_bad_sample='skip')
    with pytest.raises(ValueError, match="use decode='cpu'"):
        RetrievalEvalDataset(tiny_toyworld, RETRIEVAL_ANN, decode='device',
                             preprocessing=dict(interpolation='lanczos'))
    with pytest.raises(ValueError, match="decode='gpu'"):
        RetrievalEvalDataset(tiny_toyworld, RETRIEVAL_ANN, decode='gpu')
