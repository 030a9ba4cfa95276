"""Result caches are keyed by model, inputs and settings: changed inputs are never served
stale results, unchanged ones are reused.

Each case evaluates twice into one work dir, the second time with one thing changed, and
checks that the second result equals a fresh evaluation without any cache.
"""
import contextlib
import copy
import json
import os
import shutil

import pytest
import torch
from torch.utils.data import Dataset

import backbones  # noqa: F401  (registers the model)
from harness.core.registry import MODELS
from tasks.cache_keys import dataset_identity, results_key
from tasks.caption.evaluate import caption_dataset
from tasks.datasets import (CaptionEvalDataset, RetrievalEvalDataset, VideoRetrievalDataset,
                            VQADataset, VQAv2Dataset)
from tasks.retrieval import compute_retrieval_scores
from tasks.retrieval.cache import CACHE_DIRNAME

SIZE = 48
RETRIEVAL_ANN = 'annotations/coco_karpathy_test.json'
RETRIEVAL = dict(k=4, batch_size=4, itm_batch_size=4, device='cpu', block_size=4)
DECODING = dict(num_beams=1, max_length=8, min_length=2)


def _tiny_blip(vocab, seed=0):
    torch.manual_seed(seed)
    return MODELS.build(dict(
        type='Blip', vision=dict(type='BlipViT', arch='vit_tiny_patch8', image_size=SIZE),
        tokenizer=dict(type='BlipTokenizer', vocab=str(vocab)), text_arch='tiny',
        losses=('itc', 'itm', 'lm'), queue_size=16, max_text_length=35,
        prompt='a picture of ', text_overrides=dict(initializer_range=0.2))).eval()


@pytest.fixture(scope='module')
def model(tiny_toyworld):
    return _tiny_blip(tiny_toyworld / 'vocab')


@pytest.fixture
def world(tiny_toyworld, tmp_path):
    """A private copy of the tiny ToyWorld whose files a test may change."""
    return shutil.copytree(tiny_toyworld, tmp_path / 'world')


def _retrieval_split(root, **options):
    return RetrievalEvalDataset(root, RETRIEVAL_ANN, image_size=SIZE, **options).limit(8)


def _assert_same_scores(actual, expected):
    assert torch.equal(actual.i2t, expected.i2t) and torch.equal(actual.t2i, expected.t2i)


def test_retrieval_scores_of_other_preprocessing_are_computed_anew(model, world, tmp_path):
    work_dir = tmp_path / 'work'
    bicubic = compute_retrieval_scores(model, _retrieval_split(world), work_dir=work_dir,
                                       cache_key='tiny', **RETRIEVAL)
    bilinear_split = _retrieval_split(world, preprocessing=dict(interpolation='bilinear'))
    bilinear = compute_retrieval_scores(model, bilinear_split, work_dir=work_dir,
                                        cache_key='tiny', **RETRIEVAL)
    fresh = compute_retrieval_scores(model, bilinear_split, **RETRIEVAL)
    _assert_same_scores(bilinear, fresh)
    assert not torch.equal(bilinear.i2t, bicubic.i2t)  # the control: the pixels matter
    assert len(list((work_dir / CACHE_DIRNAME).iterdir())) == 2
    again = compute_retrieval_scores(model, _retrieval_split(world), work_dir=work_dir,
                                     cache_key='tiny', **RETRIEVAL)
    _assert_same_scores(again, bicubic)
    assert len(list((work_dir / CACHE_DIRNAME).iterdir())) == 2  # reused, not recomputed


def test_retrieval_scores_after_an_image_is_replaced_in_the_annotations(model, world, tmp_path):
    work_dir = tmp_path / 'work'
    compute_retrieval_scores(model, _retrieval_split(world), work_dir=work_dir,
                             cache_key='tiny', **RETRIEVAL)
    path = world / RETRIEVAL_ANN
    records = json.loads(path.read_text())
    records[0]['image'], records[1]['image'] = records[1]['image'], records[0]['image']
    path.write_text(json.dumps(records))
    edited = _retrieval_split(world)
    cached = compute_retrieval_scores(model, edited, work_dir=work_dir, cache_key='tiny',
                                      **RETRIEVAL)
    _assert_same_scores(cached, compute_retrieval_scores(model, edited, **RETRIEVAL))


def test_captions_of_other_normalisation_are_generated_anew(model, world, tmp_path):
    settings = dict(decoding=DECODING, batch_size=4, work_dir=tmp_path / 'work', cache_key='tiny')
    first, _ = caption_dataset(model, CaptionEvalDataset(world, RETRIEVAL_ANN, image_size=SIZE),
                               **settings)
    other = CaptionEvalDataset(world, RETRIEVAL_ANN, image_size=SIZE,
                               preprocessing=dict(mean=(0.1,) * 3, std=(0.9,) * 3))
    cached, rate = caption_dataset(model, other, **settings)
    fresh, _ = caption_dataset(model, other, **dict(settings, work_dir=None))
    assert rate and cached == fresh
    assert cached != first  # the control: the pixels change the captions
    again, rate = caption_dataset(
        model, CaptionEvalDataset(world, RETRIEVAL_ANN, image_size=SIZE), **settings)
    assert again == first and not rate  # reused: nothing generated


def test_captions_of_each_precision_are_generated_and_cached_apart(model, world, tmp_path):
    settings = dict(decoding=DECODING, batch_size=4, work_dir=tmp_path / 'work', cache_key='tiny')
    dataset = CaptionEvalDataset(world, RETRIEVAL_ANN, image_size=SIZE)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    caption_dataset(model, dataset, **settings)
    for precision, reference_model, context in (
            (dict(weights_dtype='bfloat16'), copy.deepcopy(model).bfloat16(),
             contextlib.nullcontext()),
            (dict(autocast_dtype='bfloat16'), model, torch.autocast('cpu', torch.bfloat16))):
        captions, rate = caption_dataset(model, dataset, **settings, **precision)
        assert rate  # generated: the float32 captions of the same checkpoint are not reused
        with context:
            expected, _ = caption_dataset(reference_model, dataset,
                                          **dict(settings, work_dir=None))
        assert captions == expected
        again, rate = caption_dataset(model, dataset, **settings, **precision)
        assert again == captions and not rate  # reused at the same precision
    assert all(torch.equal(value, before[name]) for name, value in model.state_dict().items())
    with pytest.raises(ValueError, match='choose one'):
        caption_dataset(model, dataset, **settings, autocast_dtype='bfloat16',
                        weights_dtype='bfloat16')


def test_without_a_cache_key_the_models_weights_name_the_results(tiny_toyworld, world, tmp_path):
    settings = dict(decoding=DECODING, batch_size=4, work_dir=tmp_path / 'work')
    dataset = CaptionEvalDataset(world, RETRIEVAL_ANN, image_size=SIZE)
    caption_dataset(_tiny_blip(tiny_toyworld / 'vocab', seed=0), dataset, **settings)
    other = _tiny_blip(tiny_toyworld / 'vocab', seed=1)
    cached, rate = caption_dataset(other, dataset, **settings)
    assert rate and cached == caption_dataset(other, dataset, **dict(settings, work_dir=None))[0]
    assert results_key(other, None, None) is None  # nothing cached: no weights hashed
    assert results_key(other, 'ckpt', tmp_path) == 'ckpt'


def test_identity_follows_what_decides_the_inputs(world):
    def identity(**options):
        return dataset_identity(RetrievalEvalDataset(world, RETRIEVAL_ANN, **options))

    base = identity(image_size=SIZE)
    assert identity(image_size=SIZE) == base
    assert identity(image_size=SIZE + 16) != base
    assert identity(image_size=SIZE, decode='device') != base
    assert identity(image_size=SIZE, preprocessing=dict(mean=(0.5,) * 3, std=(0.5,) * 3)) != base
    assert dataset_identity(RetrievalEvalDataset(world, RETRIEVAL_ANN, image_size=SIZE)
                            .limit(3)) != base
    path = world / RETRIEVAL_ANN
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched: maybe edited
    assert identity(image_size=SIZE) != base


def test_video_identity_covers_the_frames(world):
    def identity(**options):
        return dataset_identity(VideoRetrievalDataset(
            world, 'msrvtt/msrvtt_test.jsonl', video_root='msrvtt/videos', **options))

    base = identity(num_frames=4, image_size=SIZE)
    assert identity(num_frames=4, image_size=SIZE) == base
    assert identity(num_frames=2, image_size=SIZE) != base
    assert identity(num_frames=4, image_size=SIZE, sampling='centre') != base
    assert identity(num_frames=4, image_size=SIZE + 16) != base


def test_vqa_identity_covers_question_settings_and_the_question_file(world):
    def blip_style(**options):
        return dataset_identity(VQADataset(world, 'annotations/vqa_test.json', split='test',
                                           image_size=SIZE, **options))

    assert blip_style() == blip_style()
    assert blip_style(max_question_words=3) != blip_style()  # questions cleaned shorter
    questions = 'vqa/v2_OpenEnded_mscoco_val_questions.json'

    def v2():
        return dataset_identity(VQAv2Dataset(
            world, questions, split='test', image_size=SIZE,
            image_pattern='images/toyworld_vqa_val_{image_id:06d}.png'))

    before = v2()
    path = world / questions
    path.write_text(path.read_text().replace('"question": "', '"question": "so '))
    assert v2() != before  # another question file (same size and clock tick or not)


class _Plain(Dataset):
    def __init__(self, length):
        self.length = length

    def __len__(self):
        return self.length


def test_a_dataset_without_an_identity_is_named_by_class_and_length():
    assert dataset_identity(_Plain(3)) == dataset_identity(_Plain(3))
    assert dataset_identity(_Plain(3)) != dataset_identity(_Plain(4))
