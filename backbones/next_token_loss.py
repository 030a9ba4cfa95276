"""BLIP's LM loss (next-token cross-entropy, label smoothing) with fewer passes over logits.

``F.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1),
label_smoothing=s)`` copies the shifted logits, and its autograd graph then fills and adds
three more ``[tokens, V]`` tensors on the way back (the NLL's zero gradient, its sum with the
smoothing term's, the slice's zero gradient). With BERT's 30524-word vocabulary those passes
are a large share of a small model's training step on the CPU.

:class:`ShiftedSmoothedCrossEntropy` computes the same numbers with the same ATen kernels
but without those tensors: the log-softmax runs over every position (its rows are
independent, so the shifted rows come out as before), the NLL reads only the targets' log
probabilities, and the backward writes the log-probabilities' gradient once, row value plus
the NLL term at the target, before ``_log_softmax_backward_data``. Loss and gradient equal
PyTorch's bit for bit on the CPU (``tests/test_next_token_loss.py``), so training with it
gives the same weights as before.
"""
import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


class ShiftedSmoothedCrossEntropy(torch.autograd.Function):
    """Mean label-smoothed cross-entropy of ``logits[:, :-1]`` against ``labels[:, 1:]``.

    ``logits``: ``[B, L, V]`` float; ``labels``: ``[B, L]`` with ``-100`` where ignored.
    Equal to ``F.cross_entropy`` on the shifted, flattened tensors, forward and backward.
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, labels: torch.Tensor,
                label_smoothing: float) -> torch.Tensor:
        """The loss; saves the log probabilities of every position for the backward."""
        batch, length, vocab = logits.shape
        log_probs = torch.log_softmax(logits.reshape(batch * length, vocab), 1)
        targets = labels[:, 1:]
        ignored = targets == IGNORE_INDEX
        shifted = log_probs.view(batch, length, vocab)[:, :-1]
        picked = shifted.gather(2, targets.clamp(min=0).unsqueeze(2)).reshape(-1, 1)
        # NLL over one column (the target's), row for row as over the full rows
        nll = F.nll_loss(picked, targets.clamp(max=0).reshape(-1), ignore_index=IGNORE_INDEX)
        row_sums = log_probs.sum(1).view(batch, length)[:, :-1].reshape(-1)
        smooth = (-row_sums).masked_fill(ignored.reshape(-1), 0.0)
        kept = (~ignored).sum()
        ctx.save_for_backward(log_probs, targets, ignored, kept)
        ctx.label_smoothing = label_smoothing
        return (1 - label_smoothing) * nll + (smooth.sum() / kept) * (label_smoothing / vocab)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        """``dL/dlogits``, as autograd would compute it through ``F.cross_entropy``."""
        log_probs, targets, ignored, kept = ctx.saved_tensors
        smoothing = ctx.label_smoothing
        batch, shifted_length = targets.shape
        vocab = log_probs.shape[1]
        # nll_loss divides by its float total weight, the smoothing mean by an int64 count
        nll_grad = -((grad * (1 - smoothing)) / kept.to(grad.dtype))
        smooth_grad = ((grad * (smoothing / vocab)) / kept).expand(ignored.shape)
        smooth_grad = -smooth_grad.masked_fill(ignored, 0.0)
        # Autograd adds the NLL's gradient (zeros but at the target) to the smoothing term's:
        # "+ 0.0" is that zero (it turns an ignored row's -0.0 into +0.0, as the sum does).
        rows = log_probs.new_zeros(batch, shifted_length + 1)
        rows[:, :-1] = smooth_grad + 0.0
        grad_log_probs = rows.view(-1, 1).expand(-1, vocab).contiguous()
        at_target = torch.where(ignored, 0.0, nll_grad + smooth_grad)
        grad_log_probs.view(batch, shifted_length + 1, vocab)[:, :-1].scatter_(
            2, targets.clamp(min=0).unsqueeze(2), at_target.unsqueeze(2))
        grad_logits = torch._log_softmax_backward_data(grad_log_probs, log_probs, 1,
                                                        log_probs.dtype)
        return grad_logits.view(batch, shifted_length + 1, vocab), None, None


def shifted_smoothed_cross_entropy(logits: torch.Tensor, labels: torch.Tensor,
                                   label_smoothing: float) -> torch.Tensor:
    """Mean next-token cross-entropy with label smoothing (see the module docstring)."""
    return ShiftedSmoothedCrossEntropy.apply(logits, labels, label_smoothing)


def shifted_cross_entropy(logits: torch.Tensor, labels: torch.Tensor,
                          label_smoothing: float = 0.0) -> torch.Tensor:
    """The same loss through ``F.cross_entropy`` and autograd on a copy of the shifted logits
    (official BLIP's formulation): ``lm_loss`` runs it without smoothing, and the tests and
    ``benchmarks.bench_lm_loss`` take it as the reference."""
    shifted = logits[:, :-1].reshape(-1, logits.shape[-1])
    return F.cross_entropy(shifted, labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX,
                           label_smoothing=label_smoothing)
