"""The few largest entries of each row of a wide matrix, as one Triton kernel.

Beam search keeps, per image and step, the ``2 * beams`` best of ``beams x vocabulary``
scores (91,572 at BLIP's 3 beams). ``torch.topk`` on CUDA selects them with a multi-block
radix pass that took about half of beam search's bookkeeping at batch 1024 on an H200.
:func:`row_topk` runs one program per row that streams it once in blocks, skips a block
whose largest entry cannot enter the running top ``k``, and otherwise moves the block's
entries into it one maximum at a time. Selection does no arithmetic, so the values are
``torch.topk``'s exactly; among equal values the lower index comes first (NaN, which
``torch.topk`` ranks first, is never selected).

:func:`serves` says when it runs (on :data:`DEVICES`, float32, ``k`` up to :data:`MAX_K`);
elsewhere beam search keeps ``torch.topk``. Tests run the kernel on CPU tensors through
Triton's interpreter, as for :mod:`backbones.few_query_kernel`.
"""
from typing import Tuple

import torch
import triton
import triton.language as tl

DEVICES = ('cuda',)  # where the kernel is compiled for; Triton's interpreter also runs it on 'cpu'
MAX_K = 16
BLOCK = 4096  # entries per inner iteration


def serves(scores: torch.Tensor, k: int) -> bool:
    """Whether :func:`row_topk` serves these ``[rows, n]`` scores."""
    return (scores.device.type in DEVICES and scores.dtype == torch.float32
            and scores.dim() == 2 and scores.stride(1) == 1 and 0 < k <= MAX_K
            and k <= scores.shape[1])


def row_topk(scores: torch.Tensor, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` largest entries of each row of ``[rows, n]`` float32 ``scores``, largest
    first: ``(values [rows, k], indices [rows, k] int64)``."""
    rows, n = scores.shape
    values = torch.empty(rows, k, dtype=scores.dtype, device=scores.device)
    indices = torch.empty(rows, k, dtype=torch.int64, device=scores.device)
    _row_topk_kernel[(rows,)](scores, values, indices, scores.stride(0), n, k,
                             SLOTS=triton.next_power_of_2(k), BLOCK=BLOCK)
    return values, indices


@triton.jit
def _row_topk_kernel(scores, values, indices, row_stride, n, k,
                     SLOTS: tl.constexpr, BLOCK: tl.constexpr):
    """One row: its top ``k`` in ``SLOTS`` slots, kept sorted (unused slots hold -inf and
    index ``n``)."""
    row = tl.program_id(0).to(tl.int64)
    slot = tl.arange(0, SLOTS)
    top = tl.full([SLOTS], float('-inf'), tl.float32)
    top_index = tl.full([SLOTS], n, tl.int64)  # n: "no entry yet"
    for start in range(0, n, BLOCK):
        index = start + tl.arange(0, BLOCK)
        block = tl.load(scores + row * row_stride + index, mask=index < n,
                        other=float('-inf'))
        # The running k-th best (-inf while slots are free): a block that cannot beat it is
        # skipped whole.
        kth = tl.min(tl.where(slot < k, top, float('inf')))
        if (tl.max(block) > kth) | (kth == float("-inf")):
            merged = tl.full([SLOTS], float('-inf'), tl.float32)
            merged_index = tl.full([SLOTS], n, tl.int64)
            free = index < n  # block entries not taken yet
            for place in tl.static_range(SLOTS):
                # The next largest of the running top and the block; on a tie the lower
                # index (the running top's entries come from earlier blocks).
                from_top = tl.max(top)
                from_block = tl.max(tl.where(free, block, float('-inf')))
                top_first = tl.min(tl.where(top == from_top, top_index, n))
                block_first = tl.min(tl.where(free & (block == from_block), index,
                                              n)).to(tl.int64)
                take_top = (from_top > from_block) | ((from_top == from_block)
                                                      & (top_first < block_first))
                value = tl.where(take_top, from_top, from_block)
                chosen = tl.where(take_top, top_first, block_first)
                merged = tl.where(slot == place, value, merged)
                merged_index = tl.where(slot == place, chosen, merged_index)
                # Remove it from where it came from (-1 matches no index).
                taken_from_top = top_index == tl.where(take_top, chosen, -1)
                top = tl.where(taken_from_top, float('-inf'), top)
                top_index = tl.where(taken_from_top, n, top_index)
                free = free & (index != tl.where(take_top, -1, chosen))
            top = merged
            top_index = merged_index
    tl.store(values + row * k + slot, top, mask=slot < k)
    tl.store(indices + row * k + slot, top_index, mask=slot < k)
