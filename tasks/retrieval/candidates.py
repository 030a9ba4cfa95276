"""Which (image, text) pairs BLIP's retrieval protocol re-ranks with ITM.

For each image its top-k texts by ITC similarity (image→text), and for each text its top-k
images (text→image). The ITM logit of a pair does not depend on the direction it is asked
for, so the work is organised *by image*: each image is paired with the union of its own
top-k texts and the texts that have it among their top-k images. One pass over the images
then serves both directions, each image's cross-attention keys/values are computed once for
all its pairs, and a pair wanted by both directions is scored once (the official code scores
the two directions separately and recomputes keys/values for every pair).
"""
from dataclasses import dataclass
from typing import Sequence

import torch


@dataclass
class CandidatePlan:
    """Top-k candidate masks, both image-major ``[num_images, num_texts]`` (CPU).

    Attributes:
        i2t_mask: text ``t`` is among the top-k texts of image ``i``.
        t2i_mask: image ``i`` is among the top-k images of text ``t``.
    """

    i2t_mask: torch.Tensor
    t2i_mask: torch.Tensor

    def texts_for_image(self, image: int) -> torch.Tensor:
        """Indices of the texts to score with ITM against ``image`` (either direction)."""
        return (self.i2t_mask[image] | self.t2i_mask[image]).nonzero().flatten()

    def num_pairs(self, images: Sequence[int]) -> int:
        """Number of ITM pairs of ``images``."""
        rows = list(images)
        return int((self.i2t_mask[rows] | self.t2i_mask[rows]).sum())


def plan_candidates(sims: torch.Tensor, k: int) -> CandidatePlan:
    """Top-k texts of every image and top-k images of every text of ``sims [images, texts]``.

    ``k`` is capped at the number of candidates in each direction.
    """
    num_images, num_texts = sims.shape
    texts_per_image = sims.topk(min(k, num_texts), dim=1).indices
    images_per_text = sims.topk(min(k, num_images), dim=0).indices
    i2t_mask = torch.zeros(num_images, num_texts, dtype=torch.bool)
    i2t_mask.scatter_(1, texts_per_image.cpu(), True)
    t2i_mask = torch.zeros(num_images, num_texts, dtype=torch.bool)
    t2i_mask.scatter_(0, images_per_text.cpu(), True)
    return CandidatePlan(i2t_mask, t2i_mask)
