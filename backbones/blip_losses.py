"""The loss pieces of BLIP: feature queues, soft-target ITC, ITM hard negatives, gathers."""
from typing import List, Optional

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
import torch.nn.functional as F
from torch import nn


def distributed_world() -> bool:
    """Whether ``torch.distributed`` runs with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from every rank along dim 0, keeping the autograd graph.

    The gradient of each rank's slice is the sum of the gradients all ranks send back (as
    BLIP's ``all_gather_with_grad``); identity without ``torch.distributed``.
    """
    if not distributed_world():
        return tensor
    return torch.cat(dist_nn.all_gather(tensor.contiguous()), dim=0)


def gather_across_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from every rank along dim 0 (no gradient); identity if single."""
    if not distributed_world():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)


class FeatureQueue(nn.Module):
    """Ring buffers of momentum image/text features and their image ids (BLIP's queues).

    Buffers are ``[dim, size]`` (the official layout, so checkpoints load as they are).
    ``size=0`` keeps nothing: ITC then contrasts in-batch pairs only (CLIP-style), which
    suits short from-scratch runs whose encoders move too fast for queued features.
    """

    def __init__(self, dim: int, size: int):
        super().__init__()
        self.size = size
        self.register_buffer('image_queue', F.normalize(torch.randn(dim, size), dim=0))
        self.register_buffer('text_queue', F.normalize(torch.randn(dim, size), dim=0))
        self.register_buffer('idx_queue', torch.full((1, size), -100, dtype=torch.long))
        self.register_buffer('ptr_queue', torch.zeros(1, dtype=torch.long))

    @torch.no_grad()
    def push(self, image_feat: torch.Tensor, text_feat: torch.Tensor, image_ids: torch.Tensor):
        """Enqueue a batch (gathered from all ranks), overwriting the oldest entries."""
        if self.size == 0:
            return
        image_feat = gather_across_ranks(image_feat)
        text_feat = gather_across_ranks(text_feat)
        image_ids = gather_across_ranks(image_ids)
        count = image_feat.shape[0]
        # The pointer stays on the device: reading it (int()) would wait for the GPU each step.
        slots = (self.ptr_queue + torch.arange(count, device=image_feat.device)) % self.size
        self.image_queue[:, slots] = image_feat.T.to(self.image_queue.dtype)
        self.text_queue[:, slots] = text_feat.T.to(self.text_queue.dtype)
        self.idx_queue[:, slots] = image_ids.view(1, -1)
        self.ptr_queue.add_(count).remainder_(self.size)


def positive_targets(image_ids: torch.Tensor, all_ids: torch.Tensor) -> torch.Tensor:
    """``[B, B + Q]`` targets: uniform over the entries that show the same image."""
    positives = (image_ids.view(-1, 1) == all_ids.view(1, -1)).float()
    return positives / positives.sum(dim=1, keepdim=True)


def soft_target_contrastive_loss(sim_i2t, sim_t2i, sim_i2t_m, sim_t2i_m, targets, alpha):
    """BLIP's ITC: cross-entropy against ``alpha * softmax(momentum sims) + (1-alpha) * gt``."""
    with torch.no_grad():
        targets_i2t = alpha * F.softmax(sim_i2t_m, dim=1) + (1 - alpha) * targets
        targets_t2i = alpha * F.softmax(sim_t2i_m, dim=1) + (1 - alpha) * targets
    loss_i2t = -(F.log_softmax(sim_i2t, dim=1) * targets_i2t).sum(dim=1).mean()
    loss_t2i = -(F.log_softmax(sim_t2i, dim=1) * targets_t2i).sum(dim=1).mean()
    return (loss_i2t + loss_t2i) / 2


@torch.no_grad()
def hard_negative_weights(sims: torch.Tensor, row_ids: torch.Tensor, column_ids: torch.Tensor,
                          sharpness: float = 1.0, epsilon: float = 0.0) -> torch.Tensor:
    """Sampling weights of hard negatives: ``softmax(sharpness * sims) + epsilon`` by row,
    zero wherever the row's and the column's image ids are equal (the positives).

    BLIP pre-training adds ``epsilon=1e-4`` (models/blip_pretrain.py); retrieval
    fine-tuning adds nothing (models/blip_retrieval.py).
    """
    weights = F.softmax(sharpness * sims.float(), dim=1) + epsilon
    return weights.masked_fill(row_ids.view(-1, 1) == column_ids.view(1, -1), 0)


@torch.no_grad()
def negative_weight_problems(weights_i2t: torch.Tensor, weights_t2i: torch.Tensor
                             ) -> torch.Tensor:
    """``[not_finite, no_negative]`` of the hard-negative weights, as a bool tensor on their
    device (read it with :func:`raise_for_negative_weights`)."""
    return torch.stack([
        ~(torch.isfinite(weights_i2t).all() & torch.isfinite(weights_t2i).all()),
        (weights_i2t.sum(dim=1) == 0).any() | (weights_t2i.sum(dim=1) == 0).any()])


def raise_for_negative_weights(problems: torch.Tensor) -> None:
    """Raise the error that :func:`negative_weight_problems`' flags name (one host read)."""
    not_finite, no_negative = problems.tolist()
    # NaN/inf similarities (a diverged model) would otherwise surface as torch.multinomial's
    # "probability tensor contains inf, nan".
    if not_finite:
        raise FloatingPointError('ITM hard-negative sampling got NaN or infinite image-text '
                                 'similarities: training has diverged (the features are no '
                                 'longer finite); lower the learning rate or clip gradients')
    if no_negative:
        raise ValueError('ITM needs a negative of nonzero weight for every pair, but a row '
                         'holds only its own image; use a batch with at least two distinct '
                         'images')


@torch.no_grad()
def draw_negatives(weights_i2t: torch.Tensor, weights_t2i: torch.Tensor,
                   deferred_checks: Optional[List[torch.Tensor]] = None):
    """One negative text per image and one negative image per text, by ``multinomial``.

    The weights are checked first (:func:`negative_weight_problems`). A CUDA graph capture
    cannot read the device, so with a ``deferred_checks`` list the flags are appended to it
    for the caller to read after the step, and the draw reads uniform weights wherever a
    check fails (so that ``multinomial``'s own device assertion does not end the process
    before the clear error is raised).

    Returns:
        ``(negative_text_index_per_image, negative_image_index_per_text)``, both ``[B]``,
        indices into the columns of the weights.
    """
    problems = negative_weight_problems(weights_i2t, weights_t2i)
    if deferred_checks is None:
        raise_for_negative_weights(problems)
    else:
        deferred_checks.append(problems)
        weights_i2t, weights_t2i = (torch.where(problems.any(), torch.ones_like(weights), weights)
                                    for weights in (weights_i2t, weights_t2i))
    return (torch.multinomial(weights_i2t, 1).squeeze(1),
            torch.multinomial(weights_t2i, 1).squeeze(1))


@torch.no_grad()
def sample_hard_negatives(sim_i2t: torch.Tensor, sim_t2i: torch.Tensor, image_ids: torch.Tensor,
                          sharpness: float = 1.0,
                          deferred_checks: Optional[List[torch.Tensor]] = None):
    """BLIP pre-training's hard negatives: drawn from ITC's in-batch similarities.

    ``sim_i2t``/``sim_t2i`` are ITC's (online features against the momentum features of the
    batch, then the queue); the first ``B`` columns are used, softmaxed with ``+1e-4`` and
    every pair of the same image masked out. ``sharpness`` multiplies the similarities
    first: 1 is BLIP's rule, 0 draws negatives uniformly. Returns (and ``deferred_checks``)
    as :func:`draw_negatives`.
    """
    batch = sim_i2t.shape[0]
    return draw_negatives(
        *(hard_negative_weights(sims[:, :batch], image_ids, image_ids, sharpness, epsilon=1e-4)
          for sims in (sim_i2t, sim_t2i)), deferred_checks=deferred_checks)
