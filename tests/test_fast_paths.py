"""Opt-in fast paths of issue #18 against the plain paths they replace (CPU, fp32)."""
import pytest
import torch

from backbones.blip_losses import FeatureQueue
from backbones.compiled_layers import transformer_layers
from backbones.med import ExplicitKeyValue, MedConfig, MedSelfAttention, padding_bias
import backbones  # noqa: F401  (registers the models)
from harness.core.registry import MODELS, TASKS
from tasks.retrieval import compute_retrieval_scores
from tasks.retrieval import rerank
from tasks.retrieval.features import trim_padding
from tasks.retrieval.rerank import (fixed_layout, itm_match_logits, length_grouped,
                                    packed_forwards, packed_logits, pass_layout)
from tests.test_retrieval_eval import SETTINGS, TinyRetrievalDataset, build_model


def test_packed_forwards_cut_runs_of_like_lengths_and_fill_every_pass_but_the_last():
    texts = [torch.arange(5), torch.arange(10, 12), torch.arange(20, 27)]
    lengths = torch.zeros(27, dtype=torch.long)
    lengths[[0, 1, 2, 3, 4]] = torch.tensor([9, 5, 9, 5, 7])
    lengths[[10, 11]] = 4
    lengths[20:27] = torch.tensor([6, 6, 6, 8, 8, 8, 3])
    forwards = list(packed_forwards(texts, lengths, segments=3, segment_rows=3))
    assert [([(row, t.tolist()) for row, t in forward], positions.tolist())
            for forward, positions in forwards] == [
        ([(1, [10, 11]), (2, [20, 21, 26]), (0, [1, 3, 4])], [5, 6, 7, 8, 13, 1, 3, 4]),
        ([(2, [22, 23, 24]), (2, [25]), (0, [0, 2])], [9, 10, 11, 12, 0, 2])]
    # every pair once: positions index the concatenation of the rows' texts
    concatenated = torch.cat(texts)
    for forward, positions in forwards:
        assert torch.equal(concatenated[positions], torch.cat([t for _, t in forward]))
    assert sorted(sum((p.tolist() for _, p in forwards), [])) == list(range(14))
    assert [pass_layout(size) for size in (1024, 200, 7)] == [(16, 64), (3, 64), (1, 7)]


def test_length_grouped_puts_like_lengths_together_in_position_order():
    lengths = torch.tensor([9, 5, 9, 5, 7, 5])
    groups = length_grouped(lengths, 2)
    assert [g.tolist() for g in groups] == [[1, 3], [4, 5], [0, 2]]
    assert [g.tolist() for g in length_grouped(lengths, 6)] == [list(range(6))]


@torch.no_grad()
def test_plain_itm_chunks_of_like_lengths_match_one_chunk_and_one_chunk_is_unchanged():
    model = build_model()
    generator = torch.Generator().manual_seed(2)
    embeds = model.encode_image(torch.randn(1, 3, 32, 32, generator=generator))
    dataset = TinyRetrievalDataset(num_images=3, captions_per_image=3)
    tokens = model.tokenizer(dataset.texts, 35, padding='max_length')
    lengths = tokens['attention_mask'].sum(dim=1)
    assert lengths.unique().numel() > 2  # chunks of 2 regroup the texts
    whole = itm_match_logits(model, embeds, tokens['input_ids'], tokens['attention_mask'],
                             itm_batch_size=9)
    ids, mask = trim_padding(tokens['input_ids'], tokens['attention_mask'])
    image_kv = [(keys.expand(9, -1, -1, -1), values.expand(9, -1, -1, -1))
                for keys, values in model.image_key_values(embeds)]
    direct = model.itm_logits(ids, mask, image_kv=image_kv)[:, 1]
    assert torch.equal(whole, direct)  # one chunk: the texts as they are, bit for bit
    chunked = itm_match_logits(model, embeds, tokens['input_ids'], tokens['attention_mask'],
                               itm_batch_size=2)
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=1e-5)


def test_fixed_layout_fills_runs_and_passes_to_one_shape_and_keeps_the_real_pairs():
    forward = [(0, torch.tensor([7, 8])), (2, torch.tensor([9, 3, 4]))]
    rows, texts, kept = fixed_layout(forward, segments=3, segment_rows=3)
    assert rows.tolist() == [0, 2, 2]
    assert texts.tolist() == [7, 8, 8, 9, 3, 4, 9, 3, 4]
    assert kept.tolist() == [0, 1, 3, 4, 5]
    assert texts[kept].tolist() == [7, 8, 9, 3, 4]


@torch.no_grad()
def test_packed_itm_logits_match_per_image_chunks(monkeypatch):
    monkeypatch.setattr(rerank, 'SEGMENT_ROWS', 2)  # passes of 3 runs of 2 texts
    model = build_model()
    generator = torch.Generator().manual_seed(1)
    embeds = model.encode_image(torch.randn(3, 3, 32, 32, generator=generator))
    dataset = TinyRetrievalDataset(num_images=3, captions_per_image=3)
    tokens = model.tokenizer(dataset.texts, 35, padding='max_length')
    texts = [torch.tensor([0, 4, 5, 8]), torch.tensor([1, 2]), torch.tensor([3, 6, 7, 0, 2])]
    plain = torch.cat([itm_match_logits(model, embeds[row:row + 1], tokens['input_ids'][t],
                                        tokens['attention_mask'][t], itm_batch_size=3)
                       for row, t in enumerate(texts)])
    packed = packed_logits(model, embeds, texts, tokens, itm_batch_size=6)
    torch.testing.assert_close(packed, plain, atol=1e-5, rtol=1e-5)
    lengths = tokens['attention_mask'].sum(dim=1)
    forwards = list(packed_forwards(texts, lengths, segments=3, segment_rows=2))
    assert not torch.equal(torch.cat([p for _, p in forwards]), torch.arange(11))  # reordered
    assert not torch.equal(plain, plain.flip(0))  # the pairs' logits differ: order is tested


@pytest.mark.parametrize('segment_rows', [3, 64])
def test_packed_rerank_scores_match_the_plain_protocol(monkeypatch, segment_rows):
    monkeypatch.setattr(rerank, 'SEGMENT_ROWS', segment_rows)  # 2 runs of 3 texts, or 1 of 7
    model = build_model()
    dataset = TinyRetrievalDataset()
    plain = compute_retrieval_scores(model, dataset, **SETTINGS)
    packed = compute_retrieval_scores(model, dataset, **dict(SETTINGS, itm_batch_size=7),
                                      itm_packing=True)
    torch.testing.assert_close(packed.i2t, plain.i2t, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(packed.t2i, plain.t2i, atol=1e-5, rtol=1e-5)
    assert torch.equal(packed.i2t.argsort(dim=1), plain.i2t.argsort(dim=1))


def test_retrieval_task_takes_packing_and_caches_it_apart(tmp_path):
    model = build_model()
    dataset = TinyRetrievalDataset()
    evaluate = TASKS.get('retrieval')
    plain = evaluate(model, dataset, work_dir=tmp_path, cache_key='m', **SETTINGS)
    packed = evaluate(model, dataset, work_dir=tmp_path, cache_key='m', itm_packing=True,
                      **dict(SETTINGS, itm_batch_size=7))
    assert packed.values() == plain.values()
    assert packed.throughput  # computed, not read from the plain run's cache
    assert len(list((tmp_path / 'retrieval_cache').iterdir())) == 2


def test_feature_queue_push_wraps_around_without_reading_the_pointer(monkeypatch):
    queue = FeatureQueue(dim=2, size=5)
    monkeypatch.setattr(torch.Tensor, '__int__', lambda self: (_ for _ in ()).throw(
        AssertionError('host read of the queue pointer')))
    monkeypatch.setattr(torch.Tensor, '__index__', lambda self: (_ for _ in ()).throw(
        AssertionError('host read of the queue pointer')))
    for step in range(3):  # 3 pushes of 2: slots 0-1, 2-3, then 4 and 0
        feats = torch.full((2, 2), float(step + 1))
        queue.push(feats, -feats, torch.tensor([10 * step, 10 * step + 1]))
    assert queue.ptr_queue.tolist() == [1]
    assert queue.image_queue[0].tolist() == [3.0, 1.0, 2.0, 2.0, 3.0]
    assert queue.text_queue[1].tolist() == [-3.0, -1.0, -2.0, -2.0, -3.0]
    assert queue.idx_queue[0].tolist() == [21, 1, 10, 11, 20]


@torch.no_grad()
def test_patch_embedding_as_a_matmul_equals_the_convolution():
    vit = MODELS.build(dict(type='BlipViT', arch='vit_tiny_patch8', image_size=32)).eval()
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    embed = vit.patch_embed
    convolved = embed(images)  # on the CPU: the convolution
    torch.testing.assert_close(embed.embed_as_matmul(images), convolved, atol=1e-5, rtol=1e-5)
    assert convolved.shape == (3, 16, 96) and embed.proj.weight.shape == (96, 3, 8, 8)
    shifted = embed.embed_as_matmul(images.roll(8, dims=-1))  # patches move one column right
    torch.testing.assert_close(shifted.view(3, 4, 4, 96)[:, :, 1:],
                               convolved.view(3, 4, 4, 96)[:, :, :-1], atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_explicit_attention_equals_sdpa_for_a_masked_decoding_step():
    attention = MedSelfAttention(MedConfig(hidden_size=32, num_attention_heads=4), 32).eval()
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(6, 1, 32, generator=generator)  # one new token per row
    keys, values = (torch.randn(6, 4, 9, 8, generator=generator) for _ in range(2))
    written = torch.tensor([1] * 5 + [0] * 4)  # positions not yet written are masked
    mask = padding_bias(written[None], torch.float32)
    plain = attention(hidden, (keys, values), mask)
    explicit = attention(hidden, ExplicitKeyValue(keys, values), mask)
    torch.testing.assert_close(explicit, plain, atol=1e-6, rtol=1e-6)
    unmasked = attention(hidden, ExplicitKeyValue(keys, values), None)
    assert not torch.allclose(unmasked, plain)  # the mask is applied, not ignored


def test_compiled_layers_score_the_protocol_in_few_compilations_and_are_undone(monkeypatch):
    monkeypatch.setattr(rerank, 'SEGMENT_ROWS', 3)  # passes of 2 runs of 3 texts
    model = build_model()
    dataset = TinyRetrievalDataset(num_images=6)
    settings = dict(SETTINGS, itm_batch_size=8, itm_packing=True)
    eager = compute_retrieval_scores(model, dataset, **settings)
    torch._dynamo.reset()
    with torch._dynamo.config.patch(recompile_limit=8, fail_on_recompile_limit_hit=True):
        compiled = compute_retrieval_scores(model, dataset, **settings,
                                            compile_layers=dict(backend='eager'))
    assert torch._dynamo.utils.counters['stats']['unique_graphs'] > 0  # it did compile
    torch.testing.assert_close(compiled.i2t, eager.i2t, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(compiled.t2i, eager.t2i, atol=1e-5, rtol=1e-5)
    layers = transformer_layers(model)
    assert layers and all(layer._compiled_call_impl is None for layer in layers)
