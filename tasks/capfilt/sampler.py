"""A training sampler for CapFilt's diagnostic rows: fixed epoch size and human-pair share.

BLIP's "CapFilt vs more samples" ablation trains every corpus for the same epochs, so a
larger corpus also gets more optimisation steps and a smaller share of human pairs. This
sampler holds either fixed: each epoch draws ``epoch_size`` items, optionally a set share of
them from the human pairs at the head of the corpus (CapFilt's and the replicated corpora
put all human pairs first). Draws walk through a stream of seeded permutations of each pool,
so every pair is seen before any is seen again, across epoch boundaries too.
"""
import math
from typing import Iterator, List, Optional, Union

import torch
from mmengine.dist import get_dist_info, sync_random_seed
from torch.utils.data import Sampler

from harness.core.registry import DATA_SAMPLERS

CORPUS, UNCURATED = 'corpus', 'uncurated'


def permutation_stream(pool: int, start: int, count: int, seed: int) -> torch.Tensor:
    """Items ``start`` to ``start + count`` of the endless sequence of seeded permutations
    of ``range(pool)`` (permutation ``k`` seeded by ``seed`` and ``k``)."""
    if count == 0:
        return torch.zeros(0, dtype=torch.long)
    first, last = start // pool, (start + count - 1) // pool
    stream = torch.cat([torch.randperm(pool, generator=torch.Generator().manual_seed(
        seed * 1_000_003 + k)) for k in range(first, last + 1)])
    offset = start - first * pool
    return stream[offset:offset + count]


@DATA_SAMPLERS.register_module()
class CorpusMixSampler(Sampler):
    """Each epoch: ``epoch_size`` items, ``human_share`` of them human pairs, split by rank.

    Args:
        dataset: a sized dataset whose first ``composition['human']`` items are human pairs.
        epoch_size: items per epoch over all ranks: an int, ``'corpus'`` (the corpus's
            size) or ``'uncurated'`` (human + web pairs: the no-CapFilt corpus's size, so
            every corpus gets that corpus's optimisation steps).
        human_share: share of each epoch's items drawn from the human pairs: a float,
            ``'corpus'`` (uniform over the corpus) or ``'uncurated'`` (the share human pairs
            have in the no-CapFilt corpus).
        composition: ``dict(human=H, web=W)``, the human pairs at the corpus's head and the
            web pairs before filtering; ``TrainStage`` fills it from its corpus stage.
        seed: shuffling seed (default: one drawn and shared across ranks, as mmengine's
            ``DefaultSampler``).
    """

    def __init__(self, dataset, epoch_size: Union[int, str] = CORPUS,
                 human_share: Union[float, str] = CORPUS, composition: Optional[dict] = None,
                 seed: Optional[int] = None):
        self.size = len(dataset)
        needs_composition = UNCURATED in (epoch_size, human_share) or human_share != CORPUS
        if needs_composition and not composition:
            raise ValueError('CorpusMixSampler: epoch_size/human_share other than "corpus" need '
                             'composition=dict(human=..., web=...); train on a corpus stage\'s '
                             'output (TrainStage corpus_from) or set it in the sampler config')
        self.human = int(composition['human']) if composition else 0
        uncurated = self.human + int(composition['web']) if composition else self.size
        self.epoch_size = {CORPUS: self.size, UNCURATED: uncurated}.get(epoch_size, epoch_size)
        share = {UNCURATED: self.human / max(uncurated, 1)}.get(human_share, human_share)
        self.human_per_epoch = None if share == CORPUS else round(float(share) *
                                                                  self.epoch_size)
        if not isinstance(self.epoch_size, int) or self.epoch_size < 1:
            raise ValueError(f'CorpusMixSampler: epoch_size={epoch_size!r}; use a positive '
                             f'int, "{CORPUS}" or "{UNCURATED}"')
        if self.human_per_epoch is not None and not (
                0 <= self.human_per_epoch <= self.epoch_size and 0 < self.human < self.size):
            raise ValueError(f'CorpusMixSampler: human_share={human_share!r} needs a share in '
                             f'[0, 1] and a corpus holding both human ({self.human}) and '
                             f'other pairs ({self.size - self.human})')
        self.rank, self.world_size = get_dist_info()
        self.seed = sync_random_seed() if seed is None else seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw the items of ``epoch`` (the train loop calls this before each epoch)."""
        self.epoch = epoch

    def epoch_indices(self) -> List[int]:
        """This epoch's dataset indices, all ranks together, in training order."""
        size, epoch = self.epoch_size, self.epoch
        if self.human_per_epoch is None:
            return permutation_stream(self.size, epoch * size, size, self.seed).tolist()
        human_n, other_n = self.human_per_epoch, size - self.human_per_epoch
        human = permutation_stream(self.human, epoch * human_n, human_n, self.seed)
        other = self.human + permutation_stream(self.size - self.human, epoch * other_n,
                                                other_n, self.seed + 1)
        mixed = torch.cat([human, other])
        order = torch.randperm(size, generator=torch.Generator().manual_seed(
            self.seed * 1_000_003 - epoch - 1))
        return mixed[order].tolist()

    def __iter__(self) -> Iterator[int]:
        indices = self.epoch_indices()
        padded = indices + indices[:len(self) * self.world_size - len(indices)]
        return iter(padded[self.rank::self.world_size])

    def __len__(self) -> int:
        return math.ceil(self.epoch_size / self.world_size)
