"""ITM re-ranking of candidate pairs, one image at a time with its keys/values reused.

An image's cross-attention keys/values (``model.image_key_values``) are computed
once and expanded (a view) along the batch over its candidate texts, which run in
chunks of ``itm_batch_size`` trimmed to their longest text. This is what makes a pair cost
~9 GFLOP instead of ~25 in BLIP-base at 384 px (DESIGN §7).

The chunks come in many (batch, length) shapes, and cuDNN's attention builds an execution
plan for every new shape: on an H100 (BLIP-base, bf16) that halved the re-ranking rate of a
first run (10k vs 22k pairs/s), so ITM attention runs on the other SDPA backends.

``itm_packing=True`` (opt-in) fills every forward pass with ``itm_batch_size`` texts taken
from consecutive images of a block (:func:`packed_forwards`): the text layers see one large
batch instead of one per image, and cross-attention folds each image's texts into one query
sequence against that image's keys/values (:class:`backbones.med.SegmentedKeyValue`). Fewer,
larger kernels keep a GPU busy where per-image chunks are bound by launch overhead; the
logits equal the plain path's up to float rounding (tested on the CPU).
"""
from typing import Dict, Iterator, List, Sequence, Tuple

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from backbones.med import SegmentedKeyValue
from ..progress import ProgressMeter
from .candidates import CandidatePlan
from .features import trim_padding

ITM_ATTENTION_BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                          SDPBackend.MATH]


@torch.no_grad()
@sdpa_kernel(ITM_ATTENTION_BACKENDS)
def itm_match_logits(model, image_embeds: torch.Tensor, input_ids: torch.Tensor,
                     attention_mask: torch.Tensor, itm_batch_size: int) -> torch.Tensor:
    """Raw ITM match logits (index 1) ``[n]`` of one image ``[1, tokens, width]`` with n texts.

    ``input_ids``/``attention_mask`` (``[n, L]``) stay on the CPU: each chunk is trimmed
    there and then copied to the image's device, so the accelerator is never waited on.
    """
    device = image_embeds.device
    image_kv = model.image_key_values(image_embeds)
    logits = []
    for start in range(0, input_ids.shape[0], itm_batch_size):
        chunk_ids, chunk_mask = trim_padding(input_ids[start:start + itm_batch_size],
                                             attention_mask[start:start + itm_batch_size])
        size = chunk_ids.shape[0]
        chunk_kv = [(keys.expand(size, -1, -1, -1), values.expand(size, -1, -1, -1))
                    for keys, values in image_kv]
        logits.append(model.itm_logits(chunk_ids.to(device, non_blocking=True),
                                       chunk_mask.to(device, non_blocking=True),
                                       image_kv=chunk_kv)[:, 1])
    return torch.cat(logits).float()


Segment = Tuple[int, torch.Tensor]  # (row of the block's images, text indices)


def packed_forwards(texts_per_row: Sequence[torch.Tensor],
                    capacity: int) -> Iterator[List[Segment]]:
    """Split the rows' texts, in order, into forward passes of at most ``capacity`` texts.

    A row whose texts do not fit in the current pass continues in the next one, so every
    pass but the last is full.
    """
    forward: List[Segment] = []
    room = capacity
    for row, texts in enumerate(texts_per_row):
        start = 0
        while start < len(texts):
            taken = texts[start:start + room]
            forward.append((row, taken))
            start += len(taken)
            room -= len(taken)
            if room == 0:
                yield forward
                forward, room = [], capacity
    if forward:
        yield forward


@torch.no_grad()
@sdpa_kernel(ITM_ATTENTION_BACKENDS)
def packed_match_logits(model, image_embeds: torch.Tensor, forward: List[Segment],
                        tokens: Dict[str, torch.Tensor]) -> torch.Tensor:
    """Raw ITM match logits of one packed forward pass (its segments' texts, in order).

    ``image_embeds`` are the block's ``[n, tokens, width]`` image tokens on the device;
    ``tokens`` the CPU ``input_ids``/``attention_mask`` of all texts.
    """
    device = image_embeds.device
    texts = torch.cat([segment_texts for _, segment_texts in forward])
    input_ids, attention_mask = trim_padding(tokens['input_ids'][texts],
                                             tokens['attention_mask'][texts])
    rows, bounds, start = [], [], 0
    for row, segment_texts in forward:
        rows.append(row)
        bounds.append((start, start + len(segment_texts)))
        start += len(segment_texts)
    image_kv = [SegmentedKeyValue(keys, values, tuple(bounds))
                for keys, values in model.image_key_values(image_embeds[rows])]
    return model.itm_logits(input_ids.to(device, non_blocking=True),
                            attention_mask.to(device, non_blocking=True),
                            image_kv=image_kv)[:, 1].float()


def rerank_block(model, image_indices: Sequence[int], image_embeds: torch.Tensor,
                 plan: CandidatePlan, tokens: Dict[str, torch.Tensor], itm_batch_size: int,
                 device: torch.device, progress: ProgressMeter,
                 itm_packing: bool = False) -> Dict[str, torch.Tensor]:
    """ITM logits of every candidate pair of a block of images.

    Args:
        image_indices: the block's dataset image indices.
        image_embeds: their ``[n, tokens, width]`` token embeddings (CPU); moved to
            ``device`` for this block only.
        plan: the candidate pairs.
        tokens: ``input_ids``/``attention_mask`` of all texts (CPU).
        itm_batch_size: texts per ITM forward pass.
        progress: advanced by the number of pairs scored.
        itm_packing: fill each forward pass with texts of several images (module docstring).

    Returns:
        CPU tensors ``image_index``, ``text_index`` (long) and ``itm_logit`` (float32),
        one entry per pair.
    """
    block_embeds = image_embeds.to(device, non_blocking=True)
    if itm_packing:
        return _rerank_block_packed(model, image_indices, block_embeds, plan, tokens,
                                    itm_batch_size, progress)
    image_columns: List[torch.Tensor] = []
    text_columns: List[torch.Tensor] = []
    logits: List[torch.Tensor] = []
    for row, image in enumerate(image_indices):
        texts = plan.texts_for_image(image)
        logits.append(itm_match_logits(model, block_embeds[row:row + 1], tokens['input_ids'][texts],
                                       tokens['attention_mask'][texts], itm_batch_size))
        image_columns.append(torch.full_like(texts, image))
        text_columns.append(texts)
        progress.update(len(texts))
    return dict(image_index=torch.cat(image_columns), text_index=torch.cat(text_columns),
                itm_logit=torch.cat(logits).cpu())


def _rerank_block_packed(model, image_indices: Sequence[int], block_embeds: torch.Tensor,
                         plan: CandidatePlan, tokens: Dict[str, torch.Tensor],
                         itm_batch_size: int, progress: ProgressMeter) -> Dict[str, torch.Tensor]:
    """:func:`rerank_block` with packed forward passes (same pairs, same order)."""
    texts_per_row = [plan.texts_for_image(image) for image in image_indices]
    logits: List[torch.Tensor] = []
    for forward in packed_forwards(texts_per_row, itm_batch_size):
        logits.append(packed_match_logits(model, block_embeds, forward, tokens))
        progress.update(sum(len(texts) for _, texts in forward))
    image_column = torch.cat([torch.full_like(texts, image)
                              for image, texts in zip(image_indices, texts_per_row)])
    return dict(image_index=image_column, text_index=torch.cat(texts_per_row),
                itm_logit=torch.cat(logits).cpu() if logits else torch.empty(0))
