"""Attention of a few queries per image over that image's keys, as one Triton kernel.

Two attentions of a static decoding step read far more keys/values than they compute on:

* cross-attention: per image and head, its ``rows_per_image`` beams (one token each) over
  the image's ``N`` tokens (577 at 384 px), whose keys/values are stored once per image;
* self-attention: per row and head, the new token over the row's cached tokens.

Both are bound by memory bandwidth. SDPA's kernels tile queries in blocks of 64 or more and
reach about half of it on the cross-attention (the explicit formula does worse on the
self-attention). :func:`few_query_attention` runs one program per (image, head) that
streams the image's keys/values once, keeps the softmax online in fp32, reads the queries in
place from the ``[rows, L, H*D]`` projection and writes its output in that layout. One query
per row over a short cache (:func:`short_cache`) runs a second kernel instead, one program
per row for all its heads, which can read each key from another row of the cache
(``key_rows``: a beam's history, so a beam reorder copies no keys/values).

:func:`serves` says when it runs (on :data:`DEVICES`, fp16/bf16, at
most :data:`MAX_QUERIES` queries per image); elsewhere the callers in
:mod:`backbones.med` keep SDPA or the explicit formula. Tests run the kernel on CPU tensors
through Triton's interpreter (``TRITON_INTERPRET=1`` set before Triton is imported, and
``"cpu"`` added to :data:`DEVICES`).
"""
import math
from typing import Optional

import torch
import triton
import triton.language as tl

DEVICES = ('cuda',)  # where the kernel is compiled for; Triton's interpreter also runs it on 'cpu'
MAX_QUERIES = 16  # queries per image and head the kernel holds in one tile
BLOCK_KEYS = 64  # keys per inner iteration
SHORT_CACHE_TOKENS = 64  # one query per row over at most this many keys: the per-row kernel
SHORT_CACHE_ELEMENTS = 16384  # keys held per head block of the per-row kernel (heads x keys x D)


def serves(query: torch.Tensor, keys: torch.Tensor, rows_per_image: int,
           bias: Optional[torch.Tensor] = None, key_rows: Optional[torch.Tensor] = None
           ) -> bool:
    """Whether :func:`few_query_attention` serves this ``[rows, H, L, D]`` query (and
    ``bias``: one additive row of key biases per image, or one for all; a mask that varies
    over heads or queries is not for this kernel; ``key_rows``: only for one query per row
    over a short cache)."""
    head_dim = query.shape[-1]
    images, tokens = keys.shape[0], keys.shape[2]
    if key_rows is not None and not (
            short_cache(rows_per_image, query.shape[2], tokens)
            and key_rows.dtype == torch.long and key_rows.shape == (images, tokens)
            and key_rows.is_contiguous()):
        return False
    return (query.device.type in DEVICES
            and query.dtype in (torch.float16, torch.bfloat16) and keys.dtype == query.dtype
            and rows_per_image * query.shape[2] <= MAX_QUERIES
            and head_dim >= 16 and head_dim & (head_dim - 1) == 0
            and query.stride(-1) == 1 and keys.stride(-1) == 1
            and (bias is None or (bias.dim() == 4 and bias.shape[0] in (1, images)
                                  and bias.shape[1:] == (1, 1, tokens)
                                  and bias.stride(-1) == 1)))


def short_cache(rows_per_image: int, length: int, tokens: int) -> bool:
    """Whether the per-row kernel runs: one query per row over at most
    :data:`SHORT_CACHE_TOKENS` keys (a decoding step's self-attention)."""
    return rows_per_image == 1 and length == 1 and tokens <= SHORT_CACHE_TOKENS


def few_query_attention(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                        rows_per_image: int, bias: Optional[torch.Tensor] = None,
                        key_rows: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``softmax(QK^T/sqrt(D) + bias) V`` with rows ``g * rows_per_image ...`` of ``query``
    attending to image ``g``.

    Args:
        query: ``[G * rows_per_image, H, L, D]``, any strides with a unit last one (the
            head-split view of a ``[rows, L, H*D]`` projection is read in place).
        keys, values: ``[G, H, N, D]`` with a unit last stride.
        rows_per_image: rows of ``query`` per image.
        bias: optional additive ``[G, 1, 1, N]`` mask of the image tokens (``[1, 1, 1, N]``
            applies to every image).
        key_rows: optional ``[G, N]`` int64: key ``n`` of row ``g`` is read from row
            ``key_rows[g, n]`` of ``keys``/``values`` (a beam's history in a shared cache);
            for one query per row over a short cache only (:func:`serves`).

    Returns:
        ``[G * rows_per_image, H, L, D]``, a head-split view of a contiguous
        ``[rows, L, H, D]`` tensor (so ``.transpose(1, 2).flatten(2)`` is free).
    """
    rows, heads, length, head_dim = query.shape
    images, tokens = keys.shape[0], keys.shape[2]
    if rows != images * rows_per_image:
        raise ValueError(f'{rows} query rows are not {rows_per_image} per image for '
                         f'{images} images')
    out = torch.empty(rows, length, heads, head_dim, dtype=query.dtype, device=query.device)
    bias_stride = 0 if bias is None or bias.shape[0] == 1 else bias.stride(0)
    if short_cache(rows_per_image, length, tokens):
        block_tokens = max(16, triton.next_power_of_2(tokens))
        _short_cache_attention_kernel[(rows,)](
            query, keys, values, out, bias if bias is not None else keys,
            key_rows if key_rows is not None else keys,
            query.stride(0), query.stride(1), keys.stride(0), keys.stride(1), keys.stride(2),
            values.stride(0), values.stride(1), values.stride(2), bias_stride,
            1.0 / math.sqrt(head_dim), tokens, HAS_BIAS=bias is not None,
            HAS_KEY_ROWS=key_rows is not None, HEADS=heads,
            BLOCK_HEADS=max(1, SHORT_CACHE_ELEMENTS // (block_tokens * head_dim)),
            BLOCK_TOKENS=block_tokens, HEAD_DIM=head_dim)
        return out.transpose(1, 2)
    if key_rows is not None:
        raise ValueError('key_rows serve one query per row over at most '
                         f'{SHORT_CACHE_TOKENS} keys (got {rows_per_image} rows per image, '
                         f'{length} positions, {tokens} keys)')
    _few_query_attention_kernel[(images, heads)](
        query, keys, values, out, bias if bias is not None else keys,
        query.stride(0), query.stride(1), query.stride(2),
        keys.stride(0), keys.stride(1), keys.stride(2),
        values.stride(0), values.stride(1), values.stride(2),
        bias_stride, 1.0 / math.sqrt(head_dim), rows_per_image, length, tokens,
        HAS_BIAS=bias is not None, BLOCK_QUERIES=MAX_QUERIES, BLOCK_KEYS=BLOCK_KEYS,
        HEAD_DIM=head_dim)
    return out.transpose(1, 2)


@triton.jit
def _few_query_attention_kernel(query, keys, values, out, bias,
                                query_row_stride, query_head_stride, query_position_stride,
                                key_image_stride, key_head_stride, key_token_stride,
                                value_image_stride, value_head_stride, value_token_stride,
                                bias_image_stride, scale, rows_per_image, length, tokens,
                                HAS_BIAS: tl.constexpr, BLOCK_QUERIES: tl.constexpr,
                                BLOCK_KEYS: tl.constexpr, HEAD_DIM: tl.constexpr):
    """One (image, head): its ``rows_per_image * length`` queries over its ``tokens`` keys."""
    image = tl.program_id(0).to(tl.int64)  # int64 offsets: a batch's buffers pass 2**31
    head = tl.program_id(1)
    heads = tl.num_programs(1)
    slot = tl.arange(0, BLOCK_QUERIES)  # query slot m = row-in-image * length + position
    row = image * rows_per_image + slot // length
    position = slot % length
    queries = rows_per_image * length
    dim = tl.arange(0, HEAD_DIM)
    query_at = (query + row[:, None] * query_row_stride + head * query_head_stride
                + position[:, None] * query_position_stride + dim[None, :])
    q = tl.load(query_at, mask=slot[:, None] < queries, other=0.0)
    key_base = keys + image * key_image_stride + head * key_head_stride
    value_base = values + image * value_image_stride + head * value_head_stride
    best = tl.full([BLOCK_QUERIES], float('-inf'), tl.float32)
    total = tl.zeros([BLOCK_QUERIES], tl.float32)
    acc = tl.zeros([BLOCK_QUERIES, HEAD_DIM], tl.float32)
    for start in range(0, tokens, BLOCK_KEYS):
        token = start + tl.arange(0, BLOCK_KEYS)
        inside = token < tokens
        k = tl.load(key_base + token[:, None] * key_token_stride + dim[None, :],
                    mask=inside[:, None], other=0.0)
        v = tl.load(value_base + token[:, None] * value_token_stride + dim[None, :],
                    mask=inside[:, None], other=0.0)
        scores = tl.dot(q, tl.trans(k)) * scale
        if HAS_BIAS:
            scores += tl.load(bias + image * bias_image_stride + token, mask=inside,
                              other=0.0).to(tl.float32)[None, :]
        scores = tl.where(inside[None, :], scores, float('-inf'))
        new_best = tl.maximum(best, tl.max(scores, 1))
        probs = tl.exp(scores - new_best[:, None])
        rescale = tl.exp(best - new_best)
        total = total * rescale + tl.sum(probs, 1)
        acc = acc * rescale[:, None] + tl.dot(probs.to(v.dtype), v)
        best = new_best
    out_at = (out + (row[:, None] * length + position[:, None]) * heads * HEAD_DIM
              + head * HEAD_DIM + dim[None, :])
    tl.store(out_at, (acc / total[:, None]).to(out.dtype.element_ty),
             mask=slot[:, None] < queries)


@triton.jit
def _short_cache_attention_kernel(query, keys, values, out, bias, key_rows,
                                  query_row_stride, query_head_stride,
                                  key_row_stride, key_head_stride, key_token_stride,
                                  value_row_stride, value_head_stride, value_token_stride,
                                  bias_row_stride, scale, tokens,
                                  HAS_BIAS: tl.constexpr, HAS_KEY_ROWS: tl.constexpr,
                                  HEADS: tl.constexpr, BLOCK_HEADS: tl.constexpr,
                                  BLOCK_TOKENS: tl.constexpr, HEAD_DIM: tl.constexpr):
    """One row: its one query per head over its ``tokens`` cached keys (each read from the
    row ``key_rows`` names, or its own), a few heads at a time (a decoding step's
    self-attention)."""
    row = tl.program_id(0).to(tl.int64)
    token = tl.arange(0, BLOCK_TOKENS)
    dim = tl.arange(0, HEAD_DIM)
    inside = token < tokens
    source = tl.zeros([BLOCK_TOKENS], tl.int64) + row
    if HAS_KEY_ROWS:
        source = tl.load(key_rows + row * tokens + token, mask=inside, other=0)
    row_bias = tl.zeros([BLOCK_TOKENS], tl.float32)
    if HAS_BIAS:
        row_bias = tl.load(bias + row * bias_row_stride + token, mask=inside,
                           other=0.0).to(tl.float32)
    for first in tl.static_range(0, HEADS, BLOCK_HEADS):
        head = first + tl.arange(0, BLOCK_HEADS)
        live = head < HEADS
        q = tl.load(query + row * query_row_stride + head[:, None] * query_head_stride
                    + dim[None, :], mask=live[:, None], other=0.0).to(tl.float32)
        held = live[:, None, None] & inside[None, :, None]
        k = tl.load(keys + source[None, :, None] * key_row_stride
                    + head[:, None, None] * key_head_stride
                    + token[None, :, None] * key_token_stride + dim[None, None, :],
                    mask=held, other=0.0).to(tl.float32)
        scores = tl.sum(q[:, None, :] * k, 2) * scale + row_bias[None, :]
        scores = tl.where(inside[None, :], scores, float('-inf'))
        probs = tl.exp(scores - tl.max(scores, 1)[:, None])
        v = tl.load(values + source[None, :, None] * value_row_stride
                    + head[:, None, None] * value_head_stride
                    + token[None, :, None] * value_token_stride + dim[None, None, :],
                    mask=held, other=0.0).to(tl.float32)
        mixed = tl.sum(probs[:, :, None] * v, 1) / tl.sum(probs, 1)[:, None]
        tl.store(out + (row * HEADS + head[:, None]) * HEAD_DIM + dim[None, :],
                 mixed.to(out.dtype.element_ty), mask=live[:, None])
