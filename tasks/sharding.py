"""How evaluation and corpus work is split over distributed ranks, and how pieces are gathered.

Work is cut into fixed *blocks* of consecutive items (images, or texts for text features)
that do not depend on the world size; block ``b`` belongs to rank ``b % world_size``. So a
run resumed with another number of processes reuses the same cached blocks, and every
batch has the same members whatever the world size (results are bit-identical to one
process). Gathering fills a zero (or -inf) buffer with the rows a rank owns and reduces it
across ranks once: the sum of one value and zeros (or the max of one value and -inf) is
exact.
"""
from dataclasses import dataclass
from typing import List, Sequence

import torch
from mmengine import dist


@dataclass(frozen=True)
class Block:
    """Block ``index`` holds the items ``start .. stop - 1``."""

    index: int
    start: int
    stop: int

    @property
    def items(self) -> List[int]:
        """The block's item indices."""
        return list(range(self.start, self.stop))


def blocks_of_rank(num_items: int, block_size: int, rank: int, world_size: int) -> List[Block]:
    """The blocks of ``block_size`` consecutive items owned by ``rank`` (round robin)."""
    if block_size < 1:
        raise ValueError(f'block_size must be positive, got {block_size}')
    starts = range(0, num_items, block_size)
    return [Block(index, start, min(start + block_size, num_items))
            for index, start in enumerate(starts) if index % world_size == rank]


def blocks_of_sizes(sizes: Sequence[int], rank: int, world_size: int) -> List[Block]:
    """Blocks of the given sizes over consecutive items (e.g. one per input tar shard),
    owned round robin as :func:`blocks_of_rank`'s."""
    starts = [sum(sizes[:index]) for index in range(len(sizes))]
    return [Block(index, start, start + size)
            for index, (start, size) in enumerate(zip(starts, sizes))
            if index % world_size == rank]


def split_into_batches(blocks: List[Block], batch_size: int) -> List[List[int]]:
    """Batches of at most ``batch_size`` items, never crossing a block boundary."""
    return [block.items[start:start + batch_size]
            for block in blocks for start in range(0, block.stop - block.start, batch_size)]


def gather_rows(index: torch.Tensor, rows: torch.Tensor, num_rows: int, width: int) -> torch.Tensor:
    """The full ``[num_rows, width]`` matrix on every rank, each rank giving its own rows."""
    full = torch.zeros(num_rows, width, dtype=torch.float32)
    if len(index):
        full[index] = rows.float()
    dist.all_reduce(full, op='sum')
    return full


def all_ranks_agree(flag: bool) -> bool:
    """Whether ``flag`` holds on every rank, so that all ranks take the same branch.

    Used for cache hits: a rank that skipped work the others do would leave them waiting
    in a collective (e.g. when a file is visible on one node and not on another).
    """
    agreed = torch.tensor([int(flag)])
    dist.all_reduce(agreed, op='min')
    return bool(agreed.item())


def max_across_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """Element-wise maximum over ranks, in place (no-op in a single process)."""
    dist.all_reduce(tensor, op='max')
    return tensor
