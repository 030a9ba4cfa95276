"""ITM re-ranking of candidate pairs, one image at a time with its keys/values reused.

An image's cross-attention keys/values (``model.image_key_values``) are computed once and
expanded (a view) along the batch over its candidate texts, which run in chunks of
``itm_batch_size`` texts of like lengths (:func:`length_grouped`), each trimmed to its
longest text. This is what makes a pair cost ~9 GFLOP instead of ~25 in BLIP-base at
384 px (DESIGN §7).

The chunks come in many (batch, length) shapes, and cuDNN's attention builds an execution
plan for every new shape: on an H100 (BLIP-base, bf16) that halved the re-ranking rate of a
first run (10k vs 22k pairs/s), so ITM attention runs on the other SDPA backends.

``itm_packing=True`` (opt-in) runs every forward pass with one number of rows: each of the
block's images has its texts cut into runs of at most :data:`SEGMENT_ROWS` of like lengths,
and each pass holds ``itm_batch_size // SEGMENT_ROWS`` runs, shortest first, of one image
or several, a short run or pass filled up by repeating a text
(:func:`packed_forwards`, :func:`fixed_layout`; the fillers' logits are dropped); a pass is
trimmed to its longest text. The text layers see one large batch instead of one per image;
cross-attention folds each run's texts into one query sequence against its image's
keys/values, projected once per block (:class:`backbones.med.SegmentedKeyValue`), all runs
in one batched call. Fewer, larger kernels keep a GPU busy where per-image chunks are bound
by launch overhead, and the passes' few shapes let ``compile_layers``
(:func:`backbones.compiled_layers.layers_compiled`) compile the layers a few times per
evaluation instead of for every pass. The logits equal the plain path's up to float
rounding (tested on the CPU).
"""
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from backbones.med import KeyValue, SegmentedKeyValue, equal_segments
from ..progress import ProgressMeter
from .candidates import CandidatePlan
from .features import trim_padding

ITM_ATTENTION_BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                          SDPBackend.MATH]


def length_grouped(lengths: torch.Tensor, group_size: int) -> List[torch.Tensor]:
    """Positions ``0..n-1`` of ``lengths`` (token counts) in groups of at most
    ``group_size``: the shortest ``group_size`` first, and so on, each group in ascending
    position order (ties keep their order).

    Trimmed to its longest text, a group of like lengths carries little padding; when one
    group holds them all, the positions stay as they are (and so do the results, bit for
    bit).
    """
    order = torch.sort(lengths, stable=True).indices
    return [order[start:start + group_size].sort().values
            for start in range(0, len(lengths), group_size)]


@torch.no_grad()
@sdpa_kernel(ITM_ATTENTION_BACKENDS)
def itm_match_logits(model, image_embeds: torch.Tensor, input_ids: torch.Tensor,
                     attention_mask: torch.Tensor, itm_batch_size: int) -> torch.Tensor:
    """Raw ITM match logits (index 1) ``[n]`` of one image ``[1, tokens, width]`` with n texts.

    ``input_ids``/``attention_mask`` (``[n, L]``) stay on the CPU: the texts go in chunks of
    like lengths (:func:`length_grouped`), each trimmed there and then copied to the image's
    device, so the accelerator is never waited on.
    """
    device = image_embeds.device
    image_kv = model.image_key_values(image_embeds)
    logits = torch.empty(input_ids.shape[0], device=device)
    for chunk in length_grouped(attention_mask.sum(dim=1), itm_batch_size):
        chunk_ids, chunk_mask = trim_padding(input_ids[chunk], attention_mask[chunk])
        size = chunk_ids.shape[0]
        chunk_kv = [(keys.expand(size, -1, -1, -1), values.expand(size, -1, -1, -1))
                    for keys, values in image_kv]
        logits[chunk.to(device, non_blocking=True)] = model.itm_logits(
            chunk_ids.to(device, non_blocking=True), chunk_mask.to(device, non_blocking=True),
            image_kv=chunk_kv)[:, 1].float()
    return logits


Segment = Tuple[int, torch.Tensor]  # (row of the block's images, text indices)
SEGMENT_ROWS = 64  # texts per segment of a packed pass (an image's texts in 64-row runs)


def pass_layout(itm_batch_size: int) -> Tuple[int, int]:
    """``(segments, rows per segment)`` of a packed ITM pass of ``itm_batch_size`` texts:
    runs of :data:`SEGMENT_ROWS` texts (fewer if the pass is smaller), as many as fit."""
    rows = min(SEGMENT_ROWS, itm_batch_size)
    return itm_batch_size // rows, rows


def packed_forwards(texts_per_row: Sequence[torch.Tensor], lengths: torch.Tensor,
                    segments: int, segment_rows: int
                    ) -> Iterator[Tuple[List[Segment], torch.Tensor]]:
    """Cut each row's texts into segments of at most ``segment_rows`` texts of like lengths
    (:func:`length_grouped`), and group the segments, shortest first, into forward passes of
    ``segments`` (the last may have fewer).

    ``lengths`` are every text's token count. A pass is trimmed to its longest text, so
    passes of like lengths spend little on padding (the synthetic protocol's 8-17-token
    texts: 12.9 tokens per pass instead of 17). Yields each pass with ``positions``: where
    its texts, in the pass's order, stand in the concatenation of ``texts_per_row``. Ties
    keep their order, so the passes are the same from run to run.
    """
    runs = []  # (longest, row, texts, positions)
    offset = 0
    for row, texts in enumerate(texts_per_row):
        for picked in length_grouped(lengths[texts], segment_rows):
            runs.append((int(lengths[texts[picked]].max()), row, texts[picked], offset + picked))
        offset += len(texts)
    runs.sort(key=lambda run: run[0])  # stable: equal lengths stay in row order
    for start in range(0, len(runs), segments):
        group = runs[start:start + segments]
        yield ([(row, texts) for _, row, texts, _ in group],
               torch.cat([positions for *_, positions in group]))


def fixed_layout(forward: List[Segment], segments: int, segment_rows: int
                 ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(image rows [segments], text indices [segments * segment_rows], kept positions)``
    of a pass filled up to its fixed shape.

    A short segment repeats its last text and a short pass its last segment; ``kept``
    indexes the real pairs among the pass's rows, in order. Every pass thus has one shape
    (a compiled model does not recompile for each), and segment ``g`` of every pass is
    rows ``g * segment_rows`` onwards (cross-attention runs as one batched call).
    """
    filled = forward + [forward[-1]] * (segments - len(forward))
    rows = torch.tensor([row for row, _ in filled])
    texts, kept = [], []
    for g, (_, segment_texts) in enumerate(filled):
        texts.append(torch.cat([segment_texts,
                                segment_texts[-1:].expand(segment_rows - len(segment_texts))]))
        if g < len(forward):
            kept.append(torch.arange(g * segment_rows, g * segment_rows + len(segment_texts)))
    return rows, torch.cat(texts), torch.cat(kept)


@torch.no_grad()
@sdpa_kernel(ITM_ATTENTION_BACKENDS)
def packed_match_logits(model, block_kv: List[KeyValue], forward: List[Segment],
                        tokens: Dict[str, torch.Tensor], segments: int,
                        segment_rows: int) -> torch.Tensor:
    """Raw ITM match logits of one packed forward pass (its segments' texts, in order).

    ``block_kv`` are the block's per-layer image keys/values (``model.image_key_values``)
    on the device; ``tokens`` the CPU ``input_ids``/``attention_mask`` of all texts. The
    pass has the fixed shape of :func:`fixed_layout`.
    """
    device = block_kv[0][0].device
    rows, texts, kept = fixed_layout(forward, segments, segment_rows)
    input_ids, attention_mask = trim_padding(tokens['input_ids'][texts],
                                             tokens['attention_mask'][texts])
    rows = rows.to(device, non_blocking=True)
    bounds = equal_segments(segments, segment_rows)
    image_kv = [SegmentedKeyValue(keys.index_select(0, rows), values.index_select(0, rows),
                                  bounds)
                for keys, values in block_kv]
    logits = model.itm_logits(input_ids.to(device, non_blocking=True),
                              attention_mask.to(device, non_blocking=True),
                              image_kv=image_kv)[:, 1]
    return logits.index_select(0, kept.to(device, non_blocking=True)).float()


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


def packed_logits(model, block_embeds: torch.Tensor, texts_per_row: Sequence[torch.Tensor],
                  tokens: Dict[str, torch.Tensor], itm_batch_size: int,
                  progress: Optional[ProgressMeter] = None) -> torch.Tensor:
    """Raw ITM match logits (float32, on the device) of each row of ``block_embeds``
    (``[n, tokens, width]`` image tokens on the device) with its texts, in order: the image
    keys/values projected once, then packed passes of ``itm_batch_size`` texts (module
    docstring). ``progress`` is advanced by each pass's pairs."""
    with torch.no_grad():
        block_kv = model.image_key_values(block_embeds)
    segments, segment_rows = pass_layout(itm_batch_size)
    lengths = tokens['attention_mask'].sum(dim=1)
    logits = torch.empty(sum(len(texts) for texts in texts_per_row), device=block_embeds.device)
    for forward, positions in packed_forwards(texts_per_row, lengths, segments, segment_rows):
        logits[positions.to(logits.device, non_blocking=True)] = packed_match_logits(
            model, block_kv, forward, tokens, segments, segment_rows)
        if progress is not None:
            progress.update(len(positions))
    return logits


def _rerank_block_packed(model, image_indices: Sequence[int], block_embeds: torch.Tensor,
                         plan: CandidatePlan, tokens: Dict[str, torch.Tensor],
                         itm_batch_size: int, progress: ProgressMeter) -> Dict[str, torch.Tensor]:
    """:func:`rerank_block` with packed forward passes (same pairs, same order)."""
    texts_per_row = [plan.texts_for_image(image) for image in image_indices]
    logits = packed_logits(model, block_embeds, texts_per_row, tokens, itm_batch_size, progress)
    image_column = torch.cat([torch.full_like(texts, image)
                              for image, texts in zip(image_indices, texts_per_row)])
    return dict(image_index=image_column, text_index=torch.cat(texts_per_row),
                itm_logit=logits.cpu())
