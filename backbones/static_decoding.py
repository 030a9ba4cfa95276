"""Decoder steps with fixed shapes, replayed as one CUDA graph per step on CUDA.

:class:`StaticDecoderSteps` is a drop-in for :class:`backbones.generation.CachedDecoderSteps`
(same ``start``/``advance``, same logits up to float rounding) whose every step has the
same shapes and buffers:

* self-attention keys/values live in ``max_length``-long buffers; a step writes its token's
  keys/values at the current position and masks the positions not yet written;
* there are two such buffers: a step gathers each row's parent from the one holding the
  previous step into the other, then extends it (a gather into a second buffer runs at copy
  speed, where an in-place reorder costs a gather and a copy back);
* the beams of an image attend to its cross-attention keys/values together
  (:class:`backbones.med.SegmentedKeyValue`), so they are stored and read once per image,
  not once per beam; one product per layer writes them into the buffer, keys and values
  of a token side by side, and attention reads them through strided views;
* the one new token's self-attention does not go through SDPA
  (:class:`backbones.med.ExplicitKeyValue`), whose kernels waste their tiles on one query;
* on CUDA in half precision the prompt's and every step's cross-attention and the steps'
  self-attention run the few-query Triton kernel (:mod:`backbones.few_query_kernel`),
  which streams the keys/values near the memory's bandwidth.

On CUDA the whole step (parent gather, embeddings, every layer, the LM head) is captured
as a CUDA graph, one per direction between the two self-attention buffers, and replayed, so
one step costs one launch from the host instead of hundreds: decoding at small batches is
otherwise bound by the host. On the CPU the same step runs eagerly (that is how its
equality with the cached decoder is tested). The graphs are kept per decoder and reused
while the batch shape, dtype, autocast state and weight storage are unchanged
(:func:`graph_key`). Their buffers (at BLIP-base, 384 px and batch 64, 1.4 GB of image
keys/values in bf16) stay allocated until a new shape replaces them or the decoder is
freed, and they serve one decoding at a time per decoder.
"""
import weakref
from typing import List, Optional, Tuple

import torch

from .med import ExplicitKeyValue, SegmentedKeyValue, equal_segments, padding_bias

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
        # Two buffers of every layer's self-attention keys and values (``[layers, 2, rows,
        # heads, max_length, head_dim]``): a step reads one and writes the other.
        self.self_caches = tuple(torch.zeros(layers, 2, rows, heads, max_length, head_dim,
                                             dtype=dtype, device=device) for _ in range(2))
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

    def self_kv(self, cache: int) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        """Per layer, the ``(keys, values)`` views of self-attention buffer ``cache``."""
        return [(layer[0], layer[1]) for layer in self.self_caches[cache]]


@torch.no_grad()
def run_step(decoder, buffers: StepBuffers, source: int) -> torch.Tensor:
    """One decoding step on ``buffers``: gather each row's ``parents`` row of self-attention
    buffer ``source`` into the other one, append ``tokens`` there at ``position``, and
    return the ``[rows, V]`` logits of the next token."""
    target = buffers.self_caches[1 - source]
    # Row by row per layer and kind: index_select along a leading dimension copies whole
    # rows at memory speed (along dimension 2 of the 6-d buffer it takes three times as long).
    for source_rows, target_rows in zip(buffers.self_caches[source].flatten(0, 1),
                                        target.flatten(0, 1)):
        torch.index_select(source_rows, 0, buffers.parents, out=target_rows)
    text = decoder.bert
    hidden = text.embeddings(buffers.tokens[:, None], position_offset=buffers.position)
    self_bias = padding_bias((buffers.key_positions <= buffers.position)[None], hidden.dtype)
    for layer, (keys, values), cross_kv in zip(text.encoder.layer, buffers.self_kv(1 - source),
                                               buffers.cross_kv):
        new_keys, new_values = layer.attention.self.project_key_value(hidden)
        keys.index_copy_(2, buffers.position, new_keys)
        values.index_copy_(2, buffers.position, new_values)
        hidden = layer.attend(hidden, ExplicitKeyValue(keys, values), self_bias, cross_kv)
    return decoder.cls(hidden)[:, -1]


class CapturedStep:
    """A step's buffers and, on CUDA, the two graphs that replay :func:`run_step` on them
    (one reading each self-attention buffer).

    It holds no reference to the decoder (the per-decoder cache is weak), so calls pass it.
    """

    def __init__(self, decoder, buffers: StepBuffers):
        self.buffers = buffers
        self.graphs: List[torch.cuda.CUDAGraph] = []
        self.logits: List[torch.Tensor] = []
        if buffers.tokens.is_cuda:
            self.capture(decoder)

    def capture(self, decoder):
        """Warm up on a side stream (as CUDA graphs require), then record one step from
        each self-attention buffer."""
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for source in (0, 1, 0, 1):
                run_step(decoder, self.buffers, source)
        torch.cuda.current_stream().wait_stream(stream)
        for source in (0, 1):
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph), autocast_without_cache():
                self.logits.append(run_step(decoder, self.buffers, source))
            self.graphs.append(graph)

    def __call__(self, decoder, source: int) -> torch.Tensor:
        """Run the step from self-attention buffer ``source``; a copy of its logits (the
        output buffer is overwritten by the next replay)."""
        if not self.graphs:
            return run_step(decoder, self.buffers, source)
        self.graphs[source].replay()
        return self.logits[source].clone()


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
        self.source = 0  # the self-attention buffer holding the hypotheses so far

    def start(self, prompt_ids: torch.Tensor) -> torch.Tensor:
        """Run the ``[B, P]`` prompt once per image; ``[B * rows_per_image, V]`` next logits."""
        buffers = self.buffers
        if buffers.image_bias is not None:
            buffers.image_bias.copy_(padding_bias(self.image_atts, buffers.image_bias.dtype))
        logits, self_kv = self.decoder(prompt_ids, torch.ones_like(prompt_ids),
                                       image_kv=buffers.prompt_kv, return_self_kv=True)
        repeat = buffers.rows_per_image
        length = prompt_ids.shape[1]
        self.source = 0
        for (keys, values), (prompt_keys, prompt_values) in zip(buffers.self_kv(0), self_kv):
            keys[:, :, :length].copy_(prompt_keys.repeat_interleave(repeat, dim=0))
            values[:, :, :length].copy_(prompt_values.repeat_interleave(repeat, dim=0))
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
        logits = self.step(self.decoder, self.source)
        self.source = 1 - self.source
        return logits
