"""BlipVQA against hand re-derivations of official BLIP's ``models/blip_vqa.py``.

The references below follow the official code path question by question (its training
loss, its ``rank_answer`` loop, a question decoded alone) with label smoothing written
out by hand, and our batched model must agree with them on a tiny random-weight model.
"""
import pytest
import torch
import torch.nn.functional as F
from hf_builders import MINILM_DIR, randomize_

from harness.core.registry import MODELS

SMOOTHING = 0.1
QUESTIONS = ['what colour is the large square on the left?', 'how many?',
             'is there a dog?', 'where is the small red circle in the picture?']
ANSWERS = ['yes', 'no', 'two', 'red', 'blue square', 'on the left side', 'three dogs', 'a cat',
           'left', 'in the middle of the picture', 'green', 'one']


def tiny_vqa(seed: int = 0, image_size: int = 32):
    """A tiny random BlipVQA in eval mode, weights wide enough that answers differ."""
    torch.manual_seed(seed)
    model = MODELS.build(dict(
        type='BlipVQA', text_arch='tiny',
        vision=dict(type='BlipViT', arch='vit_tiny_patch8', image_size=image_size),
        tokenizer=dict(type='BlipTokenizer', vocab=str(MINILM_DIR))))
    return randomize_(model, seed, std=0.1).eval()


@pytest.fixture(scope='module')
def model():
    """The tiny model of seed 0."""
    return tiny_vqa()


def images(count: int, seed: int = 0, size: int = 32) -> torch.Tensor:
    """Random normalised-looking images."""
    return torch.randn(count, 3, size, size, generator=torch.Generator().manual_seed(seed))


def smoothed_token_losses(logits: torch.Tensor, targets: torch.Tensor, smoothing: float):
    """Label-smoothed cross-entropy per position, written out: ``(1 - e) * nll + e * mean
    over the vocabulary of -log p`` (positions whose target is -100 count 0)."""
    log_probs = logits.float().log_softmax(dim=-1)
    kept = targets != -100
    nll = -log_probs.gather(-1, targets.clamp(min=0)[..., None]).squeeze(-1)
    uniform = -log_probs.mean(dim=-1)
    return ((1 - smoothing) * nll + smoothing * uniform) * kept


def sequence_loss(model, states, atts, answer_ids, answer_mask, smoothing):
    """Official per-answer loss: decoder over ``[DEC] answer [SEP]``, labels = ids with pad
    -100, shifted, smoothed, summed over tokens."""
    logits = model.text_decoder(answer_ids, answer_mask, image_embeds=states, image_atts=atts)
    targets = answer_ids.masked_fill(answer_ids == model.tokenizer.pad_token_id, -100)
    return smoothed_token_losses(logits[:, :-1], targets[:, 1:], smoothing).sum(dim=1)


def decoder_ids(model, texts):
    """Official answer tokenization: padded to the longest, first token [DEC]."""
    tokens = model.tokenizer(texts, 512)
    ids = tokens['input_ids'].clone()
    ids[:, 0] = model.tokenizer.bos_token_id
    return ids, tokens['attention_mask']


# ---------------------------------------------------------------- training loss
@torch.no_grad()
def test_loss_is_officials_weighted_smoothed_sum_over_questions(model):
    questions = QUESTIONS[:3]
    answers = [['yes', 'no'], ['two', 'three dogs', 'one'], ['in the middle of the picture']]
    weights = [[0.6, 0.4], [0.5, 0.3, 0.2], [1.0]]
    batch_images = images(3)
    got = model.loss(batch_images, dict(
        question=questions, answers=[a for group in answers for a in group],
        weights=torch.tensor([w for group in weights for w in group]),
        answer_counts=torch.tensor([len(group) for group in answers])))['loss_vqa']

    expected = 0.0
    for index, question in enumerate(questions):  # each question alone: no padding at all
        image_embeds = model.encode_image(batch_images[index:index + 1])
        states, atts = model.encode_questions(image_embeds, [question])
        for answer, weight in zip(answers[index], weights[index]):
            ids, mask = decoder_ids(model, [answer])
            expected += weight * sequence_loss(model, states, atts, ids, mask, SMOOTHING)[0]
    expected /= len(questions)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-5)


def test_loss_trains_every_part(model):
    model.train()
    try:
        loss = model(images(2), dict(question=QUESTIONS[:2], answers=['yes', 'two', 'one'],
                                     weights=torch.tensor([1.0, 0.5, 0.5]),
                                     answer_counts=torch.tensor([1, 2])), mode='loss')['loss_vqa']
        loss.backward()
    finally:
        model.eval()
    for part in (model.visual_encoder, model.text_encoder, model.text_decoder):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())
    model.zero_grad(set_to_none=True)


# ---------------------------------------------------------------- rank inference
def official_rank(model, states, atts, answer_list, k, smoothing=SMOOTHING):
    """Official ``rank_answer``, one question at a time, with its [DEC]-only first step."""
    ids, mask = decoder_ids(model, answer_list)
    picks = []
    for row in range(states.shape[0]):
        q_states, q_atts = states[row:row + 1], atts[row:row + 1]
        start = torch.full((1, 1), model.tokenizer.bos_token_id)
        logits = model.text_decoder(start, torch.ones_like(start), image_embeds=q_states,
                                    image_atts=q_atts)[:, 0]
        first = F.softmax(logits, dim=1).index_select(1, ids[:, 1])
        _, top = first.topk(min(k, len(answer_list)), dim=1)
        top = top[0]
        count = len(top)
        scores = -sequence_loss(model, q_states.repeat(count, 1, 1), q_atts.repeat(count, 1),
                                ids[top], mask[top], smoothing)
        picks.append(int(top[scores.argmax()]))
    return picks


@pytest.fixture(scope='module')
def question_states(model):
    """States and masks of :data:`QUESTIONS` (a padded batch) on random images."""
    with torch.no_grad():
        return model.encode_questions(model.encode_image(images(len(QUESTIONS))), QUESTIONS)


@torch.no_grad()
@pytest.mark.parametrize('k', [1, 3, 5, 128])
def test_rank_answers_is_officials_rank_answer(model, question_states, k):
    states, atts = question_states
    assert not atts.all()  # a padded batch
    got = model.rank_answers(states, atts, model.answer_candidates(ANSWERS), k=k)
    assert got.tolist() == official_rank(model, states, atts, ANSWERS, k)


@torch.no_grad()
def test_rank_answers_breaks_ties_as_official(model, question_states):
    """Duplicated candidates tie on both scores; both pick the same answer. Which copy wins
    is decided by float rounding (batched and per-question sums are added in another order
    with several CPU threads), in the official code as here, so answers are compared."""
    states, atts = question_states
    answer_list = ['yes', 'two', 'yes', 'red', 'two', 'red']
    for k in (2, 4, 6):
        got = model.rank_answers(states, atts, model.answer_candidates(answer_list), k=k)
        official = official_rank(model, states, atts, answer_list, k)
        assert [answer_list[i] for i in got.tolist()] == [answer_list[i] for i in official]


def candidate_scores(model, states, atts, answer_list, smoothing):
    """Official rank scores (minus the summed loss) of every candidate for one question."""
    ids, mask = decoder_ids(model, answer_list)
    count = len(answer_list)
    return -sequence_loss(model, states.repeat(count, 1, 1), atts.repeat(count, 1), ids, mask,
                          smoothing)


@torch.no_grad()
def test_loglik_score_is_ranking_without_smoothing_and_can_pick_otherwise():
    """Shift the LM bias of 'yes' until 'yes' and 'blue square' tie in log-likelihood; just
    off the tie, on the side where smoothing prefers the other answer (its uniform term
    grows with the length), 'blip' and 'loglik' pick different answers, each as the
    official formula with and without smoothing."""
    model = tiny_vqa(seed=1)
    states, atts = model.encode_questions(model.encode_image(images(1, seed=1)), ['is it?'])
    answer_list = ['yes', 'blue square']
    bias = model.text_decoder.cls.predictions.bias
    yes = model.tokenizer.tokenizer.convert_tokens_to_ids('yes')
    original = bias[yes].item()

    def gaps(shift):
        bias[yes] = original + shift
        return [float(torch.diff(candidate_scores(model, states, atts, answer_list, e)))
                for e in (0.0, SMOOTHING)]  # score(blue square) - score(yes)

    low, high = -30.0, 30.0
    assert gaps(low)[0] > 0 > gaps(high)[0]
    for _ in range(60):  # bisect to the log-likelihood tie
        middle = (low + high) / 2
        low, high = (middle, high) if gaps(middle)[0] > 0 else (low, middle)
    _, at_tie = gaps(low)
    step = abs(at_tie) / 4  # loglik leans against smoothing, less than smoothing tips it
    shift = low - step if at_tie < 0 else high + step
    loglik_gap, smoothed_gap = gaps(shift)
    assert (loglik_gap > 0) != (smoothed_gap > 0)

    candidates = model.answer_candidates(answer_list)
    blip = model.rank_answers(states, atts, candidates).tolist()
    loglik = model.rank_answers(states, atts, candidates, score='loglik').tolist()
    assert blip == official_rank(model, states, atts, answer_list, 2)
    assert loglik == official_rank(model, states, atts, answer_list, 2, smoothing=0.0)
    assert blip != loglik


def test_answer_by_rank_returns_list_entries(model):
    got = model.answer(images(2), QUESTIONS[:2], answer_list=ANSWERS, k=4)
    assert len(got) == 2 and set(got) <= set(ANSWERS)
    with pytest.raises(ValueError, match='answer_list'):
        model.answer(images(2), QUESTIONS[:2])
    with pytest.raises(ValueError, match="score must be one of"):
        model.answer(images(2), QUESTIONS[:2], answer_list=ANSWERS, score='mean')


# ---------------------------------------------------------------- generate inference
@torch.no_grad()
def test_generate_masks_question_padding_only_when_asked():
    """BLIP's all-ones mask lets padded questions attend to padding (their answers change);
    ``'question'`` decodes each as if alone; unpadded, the two agree."""
    model = tiny_vqa(seed=2)
    image_embeds = model.encode_image(images(len(QUESTIONS), seed=2))
    states, atts = model.encode_questions(image_embeds, QUESTIONS)
    blip = model.generate_answers(states, atts)
    masked = model.generate_answers(states, atts, cross_attention_mask='question')
    alone = []
    for row, question in enumerate(QUESTIONS):
        one_states, one_atts = model.encode_questions(image_embeds[row:row + 1], [question])
        answers = {mask: model.generate_answers(one_states, one_atts, cross_attention_mask=mask)
                   for mask in ('blip', 'question')}
        assert answers['blip'] == answers['question']  # unpadded: the same
        alone += answers['blip']
    assert masked == alone
    padded_rows = [row for row in range(len(QUESTIONS)) if not atts[row].all()]
    assert any(blip[row] != alone[row] for row in padded_rows)
    assert all(blip[row] == alone[row] for row in range(len(QUESTIONS)) if atts[row].all())


def test_generate_rejects_an_unknown_mask(model, question_states):
    with pytest.raises(ValueError, match='cross_attention_mask'):
        model.generate_answers(*question_states, cross_attention_mask='none')


def test_predict_generates_one_answer_per_question(model):
    got = model(images(2), dict(question=QUESTIONS[:2], question_id=[7, 9]), mode='predict')
    assert [item['question_id'] for item in got] == [7, 9]
    assert all(isinstance(item['answer'], str) for item in got)


def test_video_frames_concatenated_are_one_cross_attention_input(model):
    """Video QA: the question attends to all frames' tokens at once."""
    with torch.no_grad():
        frames = model.encode_image(images(4)).view(2, -1, model.visual_encoder.embed_dim)
        states, atts = model.encode_questions(frames, QUESTIONS[:2])
    assert states.shape[0] == 2 and atts.shape == states.shape[:2]
