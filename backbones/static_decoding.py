"""Decoder steps with fixed shapes, replayed as one CUDA graph per step on CUDA.

:class:`StaticDecoderSteps` is a drop-in for :class:`backbones.generation.CachedDecoderSteps`
(same ``start``/``advance``, same logits up to float rounding) whose every step has the
same shapes and buffers:

* self-attention keys/values live in ``max_length``-long buffers; a step writes its token's
  keys/values at the current position of its own row and masks the positions not yet
  written;
* a beam reorder copies no keys/values: a ``[rows, max_length]`` table (``history``) names,
  per row and position, the buffer row that holds that position of the row's hypothesis.
  A step gathers the parents' table rows and points the new position at the row itself;
  attention reads each position from the row the table names (a slot is written once, at
  its position's step, so every table entry stays valid);
* the beams of an image attend to its cross-attention keys/values together
  (:class:`backbones.med.SegmentedKeyValue`), so they are stored and read once per image,
  not once per beam; one product per layer writes them into the buffer, keys and values
  of a token side by side, and attention reads them through strided views;
* the one new token's self-attention does not go through SDPA
  (:class:`backbones.med.ExplicitKeyValue`), whose kernels waste their tiles on one query;
* on CUDA in half precision the prompt's and every step's cross-attention and the steps'
  self-attention run the few-query Triton kernel (:mod:`backbones.few_query_kernel`),
  which streams the keys/values near the memory's bandwidth.

On CUDA the whole step (table gather, embeddings, every layer, the LM head) is captured
as one CUDA graph and replayed, so one step costs one launch from the host instead of
hundreds: decoding at small batches is otherwise bound by the host. On the CPU the same
step runs eagerly (that is how its equality with the cached decoder is tested), reading
each row's keys/values gathered through the table. Captured steps are kept per decoder and
reused while the batch shape, dtype, autocast state and weight storage are unchanged
(:func:`graph_key`). Their buffers (at BLIP-base, 384 px and batch 64, 1.4 GB of image
keys/values in bf16) stay allocated until a new shape replaces them or the decoder is
freed, and they serve one decoding at a time per decoder.
"""
import weakref
from typing import List, Optional, Tuple

import torch

from .med import ExplicitKeyValue, SegmentedKeyValue, equal_segments, padding_bias
from .side_stream import on_side_stream

# One captured step per decoder: a new shape replaces the old graph (and frees its buffers).
_GRAPHS: 'weakref.WeakKeyDictionary' = weakref.WeakKeyDictionary()


class StepBuffers:
    """The fixed tensors one decoding step reads and writes.

    Args:
        decoder: a :class:`backbones.med.MedDecoder`.
        images, tokens: images per batch and image tokens each (``N``).
        rows_per_image: hypotheses (beams) per image.
        max_length: most tokens per sequence (the self-attention buffer length).
        masked: whether image tokens carry a padding mask.
        dtype, device: of the decoder's activations.
    """

    def __init__(self, decoder, images: int, tokens: int, rows_per_image: int,
                 max_length: int, masked: bool, dtype: torch.dtype, device):
        text = decoder.bert
        layers = len(text.encoder.layer)
        attention = text.encoder.layer[0].attention.self
        heads, head_dim = attention.num_heads, attention.head_dim
        rows = images * rows_per_image
        self.rows_per_image = rows_per_image
        self.tokens = torch.zeros(rows, dtype=torch.long, device=device)
        self.parents = torch.arange(rows, device=device)
        self.position = torch.zeros(1, dtype=torch.long, device=device)
        self.own_rows = torch.arange(rows, device=device)
        # Every layer's self-attention keys and values (``[layers, 2, rows, heads, max_length,
        # head_dim]``), each written at its row and position, and per row and position the
        # row holding that position of the row's hypothesis.
        self.self_cache = torch.zeros(layers, 2, rows, heads, max_length, head_dim,
                                      dtype=dtype, device=device)
        self.history = torch.empty(rows, max_length, dtype=torch.long, device=device)
        self.restart()
        # Per layer, every image token's keys and values side by side (``[images, tokens, 2,
        # heads, head_dim]``, as one product writes them), read through head-split views.
        self.image_kv_rows = [torch.zeros(images, tokens, 2, heads, head_dim, dtype=dtype,
                                          device=device) for _ in range(layers)]
        image_kv = [(rows[:, :, 0].transpose(1, 2), rows[:, :, 1].transpose(1, 2))
                    for rows in self.image_kv_rows]
        self.image_bias = (torch.zeros(images, 1, 1, tokens, dtype=dtype, device=device)
                           if masked else None)
        # Per layer, each image's keys/values for the prompt (one row per image) and for the
        # steps (shared by the image's ``rows_per_image`` rows).
        self.prompt_kv, self.cross_kv = (
            [SegmentedKeyValue(keys, values, equal_segments(images, rows), self.image_bias)
             for keys, values in image_kv] for rows in (1, rows_per_image))
        self.key_positions = torch.arange(max_length, device=device)

    def self_kv(self) -> List[ExplicitKeyValue]:
        """Per layer, the self-attention keys/values, read through :attr:`history`."""
        return [ExplicitKeyValue(layer[0], layer[1], self.history) for layer in self.self_cache]

    def restart(self) -> None:
        """Every row's hypothesis in its own row again (as after the prompt)."""
        self.history.copy_(self.own_rows[:, None].expand_as(self.history))


@torch.no_grad()
def run_step(decoder, buffers: StepBuffers) -> torch.Tensor:
    """One decoding step on ``buffers``: each row takes its ``parents`` row's history, then
    appends ``tokens`` (keys/values in its own row at ``position``); returns the ``[rows,
    V]`` logits of the next token."""
    history = buffers.history
    history.copy_(history.index_select(0, buffers.parents))
    history.index_copy_(1, buffers.position, buffers.own_rows[:, None])
    text = decoder.bert
    hidden = text.embeddings(buffers.tokens[:, None], position_offset=buffers.position)
    self_bias = padding_bias((buffers.key_positions <= buffers.position)[None], hidden.dtype)
    for layer, self_kv, cross_kv in zip(text.encoder.layer, buffers.self_kv(),
                                        buffers.cross_kv):
        new_keys, new_values = layer.attention.self.project_key_value(hidden)
        self_kv.keys.index_copy_(2, buffers.position, new_keys)
        self_kv.values.index_copy_(2, buffers.position, new_values)
        hidden = layer.attend(hidden, self_kv, self_bias, cross_kv)
    return decoder.cls(hidden)[:, -1]


class CapturedStep:
    """A step's buffers and, on CUDA, the graph that replays :func:`run_step` on them.

    It holds no reference to the decoder (the per-decoder cache is weak), so calls pass it.
    """

    def __init__(self, decoder, buffers: StepBuffers):
        self.buffers = buffers
        self.graph: Optional[torch.cuda.CUDAGraph] = None
        self.logits: Optional[torch.Tensor] = None
        if buffers.tokens.is_cuda:
            self.capture(decoder)

    def capture(self, decoder):
        """Warm up on a side stream (as CUDA graphs require), then record one step."""
        on_side_stream(lambda: [run_step(decoder, self.buffers) for _ in range(2)])
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), autocast_without_cache():
            self.logits = run_step(decoder, self.buffers)

    def __call__(self, decoder) -> torch.Tensor:
        """Run the step; a copy of its logits (the output buffer is overwritten by the next
        replay)."""
        if self.graph is None:
            return run_step(decoder, self.buffers)
        self.graph.replay()
        return self.logits.clone()


def autocast_without_cache():
    """The current CUDA autocast state, minus its weight cache (which graphs cannot hold)."""
    if not torch.is_autocast_enabled('cuda'):
        return torch.autocast('cuda', enabled=False)
    return torch.autocast('cuda', dtype=torch.get_autocast_dtype('cuda'), cache_enabled=False)


def projection_dtype(linear: torch.nn.Linear, device: torch.device) -> torch.dtype:
    """The dtype ``linear`` gives on ``device``: autocast's while enabled, else its weight's."""
    if torch.is_autocast_enabled(device.type):
        return torch.get_autocast_dtype(device.type)
    return linear.weight.dtype


def graph_key(decoder, image_embeds: torch.Tensor, masked: bool, rows_per_image: int,
              max_length: int) -> Tuple:
    """What a captured step depends on: shapes, dtype, device, autocast and weight storage."""
    autocast = (torch.is_autocast_enabled('cuda')
                and torch.get_autocast_dtype('cuda'))
    weights = tuple(p.data_ptr() for p in decoder.parameters())
    return (tuple(image_embeds.shape), image_embeds.dtype, str(image_embeds.device), masked,
            rows_per_image, max_length, autocast, weights)


def captured_step(decoder, image_embeds: torch.Tensor, masked: bool, rows_per_image: int,
                  max_length: int, dtype: torch.dtype) -> CapturedStep:
    """This decoder's step for these shapes: the kept one, or a new one (replacing it)."""
    key = graph_key(decoder, image_embeds, masked, rows_per_image, max_length)
    kept = _GRAPHS.get(decoder)
    if kept is not None and kept[0] == key:
        return kept[1]
    _GRAPHS.pop(decoder, None)
    images, tokens = image_embeds.shape[:2]
    buffers = StepBuffers(decoder, images, tokens, rows_per_image, max_length, masked, dtype,
                          image_embeds.device)
    step = CapturedStep(decoder, buffers)
    _GRAPHS[decoder] = (key, step)
    return step


class StaticDecoderSteps:
    """Next-token logits of a MED decoder on fixed buffers (see the module docstring).

    Args:
        decoder: a :class:`backbones.med.MedDecoder` in eval mode.
        image_embeds: ``[B, N, width]`` states to cross-attend to.
        image_atts: optional ``[B, N]`` mask of ``image_embeds``.
        rows_per_image: hypotheses decoded per image.
        max_length: most tokens per sequence, prompt included.
    """

    def __init__(self, decoder, image_embeds: torch.Tensor,
                 image_atts: Optional[torch.Tensor] = None, rows_per_image: int = 1, *,
                 max_length: int):
        if decoder.training:
            raise ValueError('static decoding runs in eval mode only: call .eval() first')
        self.decoder = decoder
        self.image_atts = image_atts
        layers = decoder.bert.encoder.layer
        self.step = captured_step(decoder, image_embeds, image_atts is not None,
                                  rows_per_image, max_length,
                                  projection_dtype(layers[0].crossattention.self.key,
                                                   image_embeds.device))
        self.buffers = self.step.buffers
        # Projected straight into the step's buffers, so no second copy is held.
        for layer, rows in zip(layers, self.buffers.image_kv_rows):
            layer.crossattention.self.project_key_value_into(image_embeds, rows)
        self.max_length = max_length
        self.length = 0

    def start(self, prompt_ids: torch.Tensor) -> torch.Tensor:
        """Run the ``[B, P]`` prompt once per image; ``[B * rows_per_image, V]`` next logits."""
        buffers = self.buffers
        if buffers.image_bias is not None:
            buffers.image_bias.copy_(padding_bias(self.image_atts, buffers.image_bias.dtype))
        logits, self_kv = self.decoder(prompt_ids, torch.ones_like(prompt_ids),
                                       image_kv=buffers.prompt_kv, return_self_kv=True)
        repeat = buffers.rows_per_image
        length = prompt_ids.shape[1]
        buffers.restart()
        for cache, (prompt_keys, prompt_values) in zip(buffers.self_kv(), self_kv):
            cache.keys[:, :, :length].copy_(prompt_keys.repeat_interleave(repeat, dim=0))
            cache.values[:, :, :length].copy_(prompt_values.repeat_interleave(repeat, dim=0))
        self.length = length
        return logits[:, -1].repeat_interleave(repeat, dim=0)

    def advance(self, tokens: torch.Tensor, parent_rows: Optional[torch.Tensor] = None):
        """Append ``tokens[i]`` to the hypothesis of row ``parent_rows[i]`` (default: row ``i``).

        Returns the ``[rows, V]`` logits of the token after.
        """
        if self.length >= self.max_length:
            raise ValueError(f'static decoding holds {self.max_length} tokens; it is full')
        buffers = self.buffers
        buffers.tokens.copy_(tokens)
        if parent_rows is None:
            torch.arange(len(tokens), out=buffers.parents)
        else:
            buffers.parents.copy_(parent_rows)
        buffers.position.fill_(self.length)
        self.length += 1
        return self.step(self.decoder)
