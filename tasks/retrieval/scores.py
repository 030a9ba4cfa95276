"""BLIP's retrieval score matrices, assembled from re-ranked pairs.

A re-ranked entry scores ``ITM match logit (index 1, raw) + cosine similarity``; every entry
outside the top-k of its row is ``UNRANKED_SCORE`` (-100).
"""
from dataclasses import dataclass, field
from typing import Dict

import torch

from .candidates import CandidatePlan
from tasks.sharding import max_across_ranks

UNRANKED_SCORE = -100.0


@dataclass
class RetrievalScores:
    """``i2t [num_images, num_texts]`` and ``t2i [num_texts, num_images]`` float32 scores.

    ``throughput`` holds the rates of the work done by this call (empty for cached scores).
    """

    i2t: torch.Tensor
    t2i: torch.Tensor
    throughput: Dict[str, float] = field(default_factory=dict)


class ScoreAssembler:
    """Collects re-ranked pairs into both score matrices and gathers them across ranks.

    Both directions live image-major in one ``[2, num_images, num_texts]`` buffer (slot 1 is
    ``t2i`` transposed) that starts at ``-inf``, so a single max-reduction gathers what every
    rank filled; entries nobody filled become ``UNRANKED_SCORE``.

    Args:
        sims: ``[num_images, num_texts]`` float32 ITC cosine similarities (CPU).
        plan: which pairs belong to which direction.
    """

    def __init__(self, sims: torch.Tensor, plan: CandidatePlan):
        self.sims = sims
        self.plan = plan
        self.buffer = torch.full((2, *sims.shape), float('-inf'), dtype=torch.float32)

    def add(self, image_index: torch.Tensor, text_index: torch.Tensor,
            itm_logit: torch.Tensor) -> None:
        """Score pairs ``(image_index[p], text_index[p])`` whose ITM match logit is given."""
        score = itm_logit.float() + self.sims[image_index, text_index]
        for slot, mask in enumerate((self.plan.i2t_mask, self.plan.t2i_mask)):
            wanted = mask[image_index, text_index]
            self.buffer[slot, image_index[wanted], text_index[wanted]] = score[wanted]

    def gather(self) -> RetrievalScores:
        """The full score matrices, identical on every rank (one collective)."""
        merged = max_across_ranks(self.buffer)
        merged[merged == float('-inf')] = UNRANKED_SCORE
        return RetrievalScores(i2t=merged[0], t2i=merged[1].T.contiguous())
