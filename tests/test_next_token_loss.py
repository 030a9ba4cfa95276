"""The LM loss with its own backward equals F.cross_entropy's, bit for bit on the CPU."""
import pytest
import torch
import torch.nn.functional as F

from backbones.med import lm_loss
from backbones.next_token_loss import shifted_cross_entropy as reference_loss
from backbones.next_token_loss import shifted_smoothed_cross_entropy


def lm_batch(batch, length, vocab, width=16, seed=0, dtype=torch.float32):
    """An LM head's inputs and labels: prompt tokens and right padding ignored."""
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(batch, length, width, generator=generator, dtype=dtype)
    weight = torch.randn(vocab, width, generator=generator, dtype=dtype) * 0.3
    bias = torch.randn(vocab, generator=generator, dtype=dtype) * 0.1
    labels = torch.randint(vocab, (batch, length), generator=generator)
    lengths = torch.randint(2, length + 1, (batch,), generator=generator)
    labels[torch.arange(length) >= lengths[:, None]] = -100
    labels[:, :2] = -100  # a prompt
    return hidden, weight, bias, labels


def loss_and_grads(loss_fn, hidden, weight, bias, labels, label_smoothing, scale):
    """The loss and the gradients of every input of an LM head (product, then bias)."""
    leaves = [t.clone().requires_grad_() for t in (hidden, weight, bias)]
    logits = F.linear(leaves[0], leaves[1]) + leaves[2]
    loss = loss_fn(logits, labels, label_smoothing)
    (loss * scale).backward()
    return [loss.detach()] + [t.grad for t in leaves]


@pytest.mark.parametrize('batch,length,vocab,smoothing,scale', [
    (32, 15, 30524, 0.1, 1.0),  # the main job's pre-training batch
    (6, 9, 1000, 0.1, 0.37),
    (3, 4, 37, 0.2, 2.5),
    (5, 20, 513, 0.1, -1.0),
])
def test_same_loss_and_gradients_bit_for_bit(batch, length, vocab, smoothing, scale):
    inputs = lm_batch(batch, length, vocab, seed=vocab)
    ours = loss_and_grads(shifted_smoothed_cross_entropy, *inputs, smoothing, scale)
    expected = loss_and_grads(reference_loss, *inputs, smoothing, scale)
    for got, want in zip(ours, expected):
        assert torch.equal(got, want)


def test_gradient_of_the_logits_themselves_and_of_the_dropped_position():
    _, _, _, labels = lm_batch(4, 7, 50)
    logits = torch.randn(4, 7, 50, requires_grad=True)
    shifted_smoothed_cross_entropy(logits, labels, 0.1).backward()
    ours = logits.grad.clone()
    logits.grad = None
    reference_loss(logits, labels, 0.1).backward()
    assert torch.equal(ours, logits.grad)
    assert torch.equal(ours[:, -1], torch.zeros(4, 50))  # the last position predicts nothing


def test_every_token_ignored_gives_nan_like_pytorch():
    logits = torch.randn(2, 5, 11)
    labels = torch.full((2, 5), -100)
    assert torch.isnan(shifted_smoothed_cross_entropy(logits, labels, 0.1))
    assert torch.isnan(reference_loss(logits, labels, 0.1))


def test_double_precision_gradcheck():
    _, _, _, labels = lm_batch(2, 5, 7, dtype=torch.float64)
    logits = torch.randn(2, 5, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x: shifted_smoothed_cross_entropy(x, labels, 0.1), (logits,))


@pytest.mark.parametrize('smoothing', [0.1, 0.0])
def test_lm_loss_mean_matches_the_reference(smoothing):
    hidden, weight, bias, labels = lm_batch(3, 6, 40)
    logits = F.linear(hidden, weight) + bias
    assert torch.equal(lm_loss(logits, labels, smoothing),
                       reference_loss(logits, labels, smoothing))
