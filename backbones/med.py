"""MED: BLIP's multimodal mixture of encoder-decoder text transformer.

One BERT-shaped transformer run in three modes:

* ``'text'``       unimodal encoder: bidirectional self-attention, no cross-attention (ITC);
* ``'multimodal'`` image-grounded encoder: bidirectional self-attention + cross-attention
  to image tokens, first token ``[ENC]`` (ITM);
* ``'decoder'``    image-grounded decoder: causal self-attention + cross-attention, first
  token ``[DEC]`` (LM, captions).

Parameter names are BERT's / official BLIP's (``embeddings.word_embeddings``,
``encoder.layer.N.attention.self.query``, ``...crossattention...``, ``intermediate.dense``,
``output.dense``), so official and Hugging Face BLIP checkpoints load key for key.
Attention runs through ``torch.nn.functional.scaled_dot_product_attention``, except for a
static decoding step's attentions, which read many keys/values for few queries: on CUDA in
half precision the Triton kernel of :mod:`backbones.few_query_kernel` runs them, and
elsewhere the self-attention (:class:`ExplicitKeyValue`) runs BLIP's explicit formula; the
cross-attention probabilities can be captured on request (:func:`capture_cross_attention`)
without changing any output.
"""
import contextlib
import math
from dataclasses import dataclass
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from .next_token_loss import shifted_cross_entropy, shifted_smoothed_cross_entropy

try:  # Triton ships with torch's CUDA builds; without it SDPA and the explicit formula serve.
    from . import few_query_kernel
except ImportError:
    few_query_kernel = None

MODES = ('text', 'multimodal', 'decoder')
KeyValue = Tuple[torch.Tensor, torch.Tensor]


class SegmentedKeyValue(NamedTuple):
    """Cross-attention keys/values of several images for one batch of texts grouped by image.

    Rows ``bounds[g][0]:bounds[g][1]`` of the batch attend to image ``g``'s ``keys[g]`` and
    ``values[g]`` (``[G, H, N, D]``). Each segment's queries are folded into one long query
    sequence, so an image's keys/values are read once per segment instead of once per text
    (the plain path expands them over the batch), and texts of several images share one
    forward pass (ITM re-ranking with ``itm_packing``; the beams of an image in
    :mod:`backbones.static_decoding`). ``bias`` is an optional additive ``[G, 1, 1, N]``
    mask of the image tokens (the padding of VQA's question states).
    """

    keys: torch.Tensor
    values: torch.Tensor
    bounds: Tuple[Tuple[int, int], ...]
    bias: Optional[torch.Tensor] = None


class ExplicitKeyValue(NamedTuple):
    """Keys/values attended without SDPA: by the few-query kernel where it serves
    (:func:`few_query_kernel_serves`), else by the explicit ``softmax(QK^T/sqrt(d) + mask) V``
    (official BLIP's formula).

    For one query over a short cache (a static decoding step's self-attention) both beat
    SDPA, whose kernels tile queries in blocks of 64 or more, which one query leaves nearly
    empty (at 1536 rows of BLIP-base on an H200: 126 us explicit against 197 us per layer).
    With ``rows``, row ``b`` reads key ``k`` from row ``rows[b, k]`` of ``keys``/``values``
    (static decoding's beam history: beams share the cache rows of their common prefix).
    """

    keys: torch.Tensor
    values: torch.Tensor
    rows: Optional[torch.Tensor] = None  # [B, K]: the row holding key k of row b (None: b)

    def gathered(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """``[B, H, K, D]`` keys and values of each row's own sequence (``rows`` applied)."""
        if self.rows is None:
            return self.keys, self.values
        positions = torch.arange(self.rows.shape[1], device=self.rows.device)
        return tuple(tensor[self.rows, :, positions].transpose(1, 2)
                     for tensor in (self.keys, self.values))


def attention_probs(query: torch.Tensor, keys: torch.Tensor,
                    attn_mask: Optional[torch.Tensor]) -> torch.Tensor:
    """``softmax(QK^T/sqrt(d) + mask)``: ``[B, H, Q, K]`` attention probabilities."""
    scores = query @ keys.transpose(-2, -1) / math.sqrt(query.shape[-1])
    if attn_mask is not None:
        scores = scores + attn_mask
    return scores.softmax(dim=-1)


def equal_segments(groups: int, rows_per_group: int) -> Tuple[Tuple[int, int], ...]:
    """Bounds of ``groups`` consecutive segments of ``rows_per_group`` rows each."""
    return tuple((g * rows_per_group, (g + 1) * rows_per_group) for g in range(groups))


def few_query_kernel_serves(query: torch.Tensor, keys: torch.Tensor, rows_per_image: int,
                            bias: Optional[torch.Tensor],
                            key_rows: Optional[torch.Tensor] = None) -> bool:
    """Whether :func:`backbones.few_query_kernel.few_query_attention` runs this attention
    (Triton is present and :func:`backbones.few_query_kernel.serves` says yes)."""
    return few_query_kernel is not None and few_query_kernel.serves(
        query, keys, rows_per_image, bias, key_rows)


def segmented_attention(query: torch.Tensor, key_value: SegmentedKeyValue) -> torch.Tensor:
    """Attention of ``[B, H, L, D]`` queries, each segment of rows against its own image.

    Segments of one size that cover the batch in order run as a single call: the few-query
    kernel where it applies (a decoding step's beams on CUDA in half precision), otherwise
    SDPA.
    """
    bounds, bias = key_value.bounds, key_value.bias
    rows, heads, length, dim = query.shape
    size = bounds[0][1] - bounds[0][0]
    if bounds == equal_segments(len(bounds), size) and size * len(bounds) == rows:
        if few_query_kernel_serves(query, key_value.keys, size, bias):
            return few_query_kernel.few_query_attention(query, key_value.keys,
                                                        key_value.values, size, bias)
        folded = query.reshape(len(bounds), size, heads, length, dim).transpose(1, 2)
        out = F.scaled_dot_product_attention(
            folded.reshape(len(bounds), heads, size * length, dim), key_value.keys,
            key_value.values, attn_mask=bias)
        return out.view(len(bounds), heads, size, length, dim).transpose(1, 2).reshape(
            rows, heads, length, dim)
    outputs = []
    for image, (start, end) in enumerate(key_value.bounds):
        rows, heads, length, dim = query[start:end].shape
        folded = query[start:end].transpose(0, 1).reshape(1, heads, rows * length, dim)
        out = F.scaled_dot_product_attention(
            folded, key_value.keys[image:image + 1], key_value.values[image:image + 1],
            attn_mask=None if bias is None else bias[image:image + 1])
        outputs.append(out.view(heads, rows, length, dim).transpose(0, 1))
    return torch.cat(outputs)


@dataclass
class MedConfig:
    """Shape of a MED transformer (defaults: BLIP-base, i.e. bert-base-uncased + [DEC]/[ENC])."""

    vocab_size: int = 30524
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    encoder_width: int = 768
    hidden_dropout_prob: float = 0.1  # BLIP's med_config.json (bert-base's values)
    attention_probs_dropout_prob: float = 0.1
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    initializer_range: float = 0.02


class MedSelfAttention(nn.Module):
    """Query/key/value projections + multi-head SDPA (keys/values may come from image tokens)."""

    def __init__(self, cfg: MedConfig, key_value_width: int):
        super().__init__()
        self.num_heads = cfg.num_attention_heads
        self.head_dim = cfg.hidden_size // cfg.num_attention_heads
        self.query = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.key = nn.Linear(key_value_width, cfg.hidden_size)
        self.value = nn.Linear(key_value_width, cfg.hidden_size)
        self.dropout_p = cfg.attention_probs_dropout_prob
        # While a list (set by :func:`capture_cross_attention`), every forward appends its
        # attention probabilities ``[B, H, Q, K]`` to it.
        self.captured: Optional[List[torch.Tensor]] = None

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, L, H*D] -> [B, H, L, D]``."""
        return x.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)

    def project_key_value(self, states: torch.Tensor) -> KeyValue:
        """Keys and values of ``states`` split into heads (cacheable per image)."""
        return self.split_heads(self.key(states)), self.split_heads(self.value(states))

    def project_key_value_into(self, states: torch.Tensor, out: torch.Tensor):
        """:meth:`project_key_value` of ``[B, N, width]`` states written by one product into
        ``out``, a contiguous ``[B, N, 2, H, D]`` buffer (keys, then values) in the dtype the
        projections would give (their autocast dtype, if any).

        Rows of ``[keys | values]`` land where the product writes them, so no transposing
        copy into head-major buffers follows (at BLIP-base and batch 1024 on an H200 that
        copy took longer than the products).
        """
        dtype = out.dtype
        weight = torch.cat([self.key.weight, self.value.weight]).to(dtype)
        bias = torch.cat([self.key.bias, self.value.bias]).to(dtype)
        torch.addmm(bias, states.flatten(0, 1).to(dtype), weight.t(),
                    out=out.view(-1, weight.shape[0]))

    def forward(self, hidden, key_value: KeyValue, attn_mask: Optional[torch.Tensor]):
        """Attend from ``hidden`` to precomputed ``key_value`` (or a
        :class:`SegmentedKeyValue`, unmasked, in eval); returns ``[B, L, H*D]``."""
        query = self.split_heads(self.query(hidden))
        if isinstance(key_value, SegmentedKeyValue):
            if attn_mask is not None or self.training:
                raise ValueError('SegmentedKeyValue (packed ITM, static decoding) carries its '
                                 'own image mask and runs in eval mode only; pass '
                                 'image_atts=None and call .eval()')
            return segmented_attention(query, key_value).transpose(1, 2).flatten(2)
        if isinstance(key_value, ExplicitKeyValue):
            if few_query_kernel_serves(query, key_value.keys, 1, attn_mask, key_value.rows):
                out = few_query_kernel.few_query_attention(
                    query, key_value.keys, key_value.values, 1, attn_mask, key_value.rows)
            else:
                keys, values = key_value.gathered()
                out = attention_probs(query, keys, attn_mask) @ values
            return out.transpose(1, 2).flatten(2)
        keys, values = key_value
        if self.captured is not None:
            return self.captured_forward(query, keys, values, attn_mask)
        out = F.scaled_dot_product_attention(
            query, keys, values, attn_mask=attn_mask,
            dropout_p=self.dropout_p if self.training else 0.0)
        return out.transpose(1, 2).flatten(2)

    def captured_forward(self, query, keys, values, attn_mask):
        """SDPA's output, plus the attention probabilities recomputed and kept.

        The value returned is SDPA's, bit for bit (``explicit - explicit.detach()`` adds
        exact zeros), while gradients flow through the explicit ``softmax(QK^T/sqrt(d) +
        mask) V``, so the kept probabilities receive the gradient Grad-CAM needs.
        """
        probs = attention_probs(query, keys, attn_mask)
        if probs.requires_grad:
            probs.retain_grad()
        self.captured.append(probs)
        out = F.scaled_dot_product_attention(query.detach(), keys.detach(), values.detach(),
                                             attn_mask=attn_mask)
        if probs.requires_grad:
            explicit = probs @ values
            out = out + (explicit - explicit.detach())
        return out.transpose(1, 2).flatten(2)


class MedSelfOutput(nn.Module):
    """Output projection + dropout + residual LayerNorm of an attention block."""

    def __init__(self, cfg: MedConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, attended, residual):
        """Post-norm residual: ``LN(dropout(dense(attended)) + residual)``."""
        return self.LayerNorm(self.dropout(self.dense(attended)) + residual)


class MedAttention(nn.Module):
    """An attention block (``self`` + ``output``), used for self- and cross-attention."""

    def __init__(self, cfg: MedConfig, key_value_width: int):
        super().__init__()
        self.self = MedSelfAttention(cfg, key_value_width)
        self.output = MedSelfOutput(cfg)

    def forward(self, hidden, key_value: KeyValue, attn_mask=None):
        """Attend and add the residual."""
        return self.output(self.self(hidden, key_value, attn_mask), hidden)


class MedIntermediate(nn.Module):
    """First FFN projection with GELU."""

    def __init__(self, cfg: MedConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)

    def forward(self, hidden):
        """``gelu(dense(hidden))``."""
        return F.gelu(self.dense(hidden))


class MedOutput(nn.Module):
    """Second FFN projection + dropout + residual LayerNorm."""

    def __init__(self, cfg: MedConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, intermediate, residual):
        """Post-norm residual of the FFN."""
        return self.LayerNorm(self.dropout(self.dense(intermediate)) + residual)


class MedLayer(nn.Module):
    """Self-attention, optional cross-attention to image tokens, then FFN."""

    def __init__(self, cfg: MedConfig):
        super().__init__()
        self.attention = MedAttention(cfg, cfg.hidden_size)
        self.crossattention = MedAttention(cfg, cfg.encoder_width)
        self.intermediate = MedIntermediate(cfg)
        self.output = MedOutput(cfg)

    def forward(self, hidden, self_mask, cross_kv: Optional[KeyValue] = None, cross_mask=None,
                past_self_kv: Optional[KeyValue] = None, first_token_only: bool = False):
        """Run one layer; returns ``(hidden, self_kv)`` where ``self_kv`` includes the past.

        ``cross_kv`` are the image tokens' keys/values for this layer (``None`` in text mode).
        ``past_self_kv`` are cached self-attention keys/values of earlier decoding steps.
        ``first_token_only``: see :meth:`attend`.
        """
        self_kv = self.attention.self.project_key_value(hidden)
        if past_self_kv is not None:
            self_kv = (torch.cat([past_self_kv[0], self_kv[0]], dim=2),
                       torch.cat([past_self_kv[1], self_kv[1]], dim=2))
        return self.attend(hidden, self_kv, self_mask, cross_kv, cross_mask,
                           first_token_only), self_kv

    def attend(self, hidden, self_kv: KeyValue, self_mask, cross_kv=None, cross_mask=None,
               first_token_only: bool = False):
        """The layer after its self-attention keys/values are known: attention blocks, FFN
        (``first_token_only``: the FFN on the first position alone, ``[B, 1, hidden]`` out)."""
        hidden = self.attention(hidden, self_kv, self_mask)
        if cross_kv is not None:
            hidden = self.crossattention(hidden, cross_kv, cross_mask)
        if first_token_only:
            hidden = hidden[:, :1]
        return self.output(self.intermediate(hidden), hidden)


@contextlib.contextmanager
def capture_cross_attention(text_model: 'MedTextModel', layers: Sequence[int]
                            ) -> Iterator[Dict[int, List[torch.Tensor]]]:
    """Keep the cross-attention probabilities of ``layers`` while the block runs.

    Yields ``{layer: [probs [B, H, Q, K] of each forward pass]}``; outputs are unchanged
    (SDPA still computes them), and under autograd the kept tensors get ``.grad``.
    """
    depth = len(text_model.encoder.layer)
    wrong = [layer for layer in layers if not 0 <= layer < depth]
    if wrong:
        raise ValueError(f'cross-attention layers {wrong} do not exist; this text model has '
                         f'layers 0..{depth - 1}')
    modules = {layer: text_model.encoder.layer[layer].crossattention.self for layer in layers}
    maps: Dict[int, List[torch.Tensor]] = {layer: [] for layer in layers}
    for layer, module in modules.items():
        module.captured = maps[layer]
    try:
        yield maps
    finally:
        for module in modules.values():
            module.captured = None


class MedEmbeddings(nn.Module):
    """Word + absolute position embeddings, LayerNorm, dropout (BLIP has no token types)."""

    def __init__(self, cfg: MedConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size,
                                            padding_idx=cfg.pad_token_id)
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, input_ids, position_offset: Union[int, torch.Tensor] = 0):
        """Embed ``[B, L]`` ids whose first position is ``position_offset`` (an int, or a
        one-element tensor that a replayed CUDA graph reads)."""
        positions = torch.arange(input_ids.shape[1], device=input_ids.device) + position_offset
        embedded = self.word_embeddings(input_ids) + self.position_embeddings(positions)
        return self.dropout(self.LayerNorm(embedded))


class MedEncoder(nn.Module):
    """The stack of :class:`MedLayer` (named ``encoder.layer.N`` as in BERT)."""

    def __init__(self, cfg: MedConfig):
        super().__init__()
        self.layer = nn.ModuleList(MedLayer(cfg) for _ in range(cfg.num_hidden_layers))


def padding_bias(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``[B, K]`` 1/0 key mask -> additive ``[B, 1, 1, K]`` bias (0 or dtype min)."""
    return (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def causal_padding_bias(attention_mask: torch.Tensor, query_len: int, dtype) -> torch.Tensor:
    """Additive ``[B, 1, Q, K]`` bias: causal over the last ``Q`` of ``K`` keys + padding."""
    key_len = attention_mask.shape[1]
    query_pos = torch.arange(key_len - query_len, key_len, device=attention_mask.device)
    allowed = query_pos[:, None] >= torch.arange(key_len, device=attention_mask.device)[None]
    allowed = allowed[None, None] & attention_mask[:, None, None, :].bool()
    return (~allowed).to(dtype) * torch.finfo(dtype).min


def init_bert_weights(module: nn.Module, std: float = 0.02):
    """BERT's initialisation: normal(0, 0.02) weights, zero biases, unit LayerNorms."""
    for sub in module.modules():
        if isinstance(sub, (nn.Linear, nn.Embedding)):
            nn.init.normal_(sub.weight, std=std)
        if isinstance(sub, nn.Linear) and sub.bias is not None:
            nn.init.zeros_(sub.bias)
        if isinstance(sub, nn.LayerNorm):
            nn.init.ones_(sub.weight)
            nn.init.zeros_(sub.bias)


class MedTextModel(nn.Module):
    """BERT-named MED transformer (``embeddings`` + ``encoder.layer.N``) with three modes."""

    def __init__(self, cfg: MedConfig):
        super().__init__()
        self.config = cfg
        self.embeddings = MedEmbeddings(cfg)
        self.encoder = MedEncoder(cfg)
        init_bert_weights(self, cfg.initializer_range)

    def image_key_values(self, image_embeds: torch.Tensor) -> List[KeyValue]:
        """Per-layer cross-attention keys/values of image tokens (compute once, reuse)."""
        return [layer.crossattention.self.project_key_value(image_embeds)
                for layer in self.encoder.layer]

    def forward(self,
                input_ids: torch.Tensor,
                attention_mask: torch.Tensor,
                mode: str = 'text',
                image_embeds: Optional[torch.Tensor] = None,
                image_atts: Optional[torch.Tensor] = None,
                image_kv: Optional[List[KeyValue]] = None,
                past_self_kv: Optional[List[KeyValue]] = None,
                return_self_kv: bool = False,
                first_token_only: bool = False):
        """Encode or decode ``input_ids``.

        Args:
            input_ids: ``[B, L]`` token ids (first token [CLS], [ENC] or [DEC] per mode).
            attention_mask: ``[B, L]`` (or ``[B, past + L]`` when decoding with a cache).
            mode: one of :data:`MODES`.
            image_embeds: ``[B, N, encoder_width]`` image tokens (multimodal/decoder).
            image_atts: ``[B, N]`` image token mask (default all ones).
            image_kv: precomputed :meth:`image_key_values` (instead of ``image_embeds``), or
                one :class:`SegmentedKeyValue` per layer for texts of several images.
            past_self_kv: per-layer cached self-attention keys/values (decoder mode).
            return_self_kv: also return the per-layer self-attention keys/values.
            first_token_only: return ``[B, 1, hidden]``, the first token's states (all that
                ITM and ITC read): the last layer's FFN then runs on that token alone. Its
                attention still runs for every token (SDPA's sums depend on the query
                length), so the states equal the full output's first row, bit for bit
                where the GEMMs round a row the same whatever rows are beside it (the tiny
                models on the CPU), else to float rounding.

        Returns:
            ``[B, L, hidden]`` states, plus the list of self-attention key/values if asked.
        """
        if mode not in MODES:
            raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
        if first_token_only and (mode == 'decoder' or return_self_kv):
            raise ValueError('first_token_only serves the encoder modes (ITM, ITC): the '
                             'decoder and a returned cache need every position')
        past_len = 0 if past_self_kv is None else past_self_kv[0][0].shape[2]
        hidden = self.embeddings(input_ids, position_offset=past_len)
        dtype = hidden.dtype
        if mode == 'decoder':
            self_mask = causal_padding_bias(attention_mask, input_ids.shape[1], dtype)
        else:
            self_mask = padding_bias(attention_mask, dtype)

        cross_mask = None
        if mode == 'text':
            image_kv = [None] * len(self.encoder.layer)
        else:
            if image_kv is None:
                if image_embeds is None:
                    raise ValueError(f'mode {mode!r} needs image_embeds or image_kv')
                image_kv = self.image_key_values(image_embeds)
            if image_atts is not None:
                cross_mask = padding_bias(image_atts, dtype)

        last = len(self.encoder.layer) - 1
        new_self_kv = []
        for index, layer in enumerate(self.encoder.layer):
            past = None if past_self_kv is None else past_self_kv[index]
            hidden, self_kv = layer(hidden, self_mask, image_kv[index], cross_mask, past,
                                    first_token_only=first_token_only and index == last)
            new_self_kv.append(self_kv)
        return (hidden, new_self_kv) if return_self_kv else hidden


class MedPredictionTransform(nn.Module):
    """Dense + GELU + LayerNorm before the vocabulary projection (BERT's MLM transform)."""

    def __init__(self, cfg: MedConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, hidden):
        """``LN(gelu(dense(hidden)))``."""
        return self.LayerNorm(F.gelu(self.dense(hidden)))


class MedLMPrediction(nn.Module):
    """``cls.predictions``: transform then a vocabulary projection with its own bias."""

    def __init__(self, cfg: MedConfig):
        super().__init__()
        self.transform = MedPredictionTransform(cfg)
        self.decoder = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))

    def forward(self, hidden):
        """Vocabulary logits ``[B, L, V]``."""
        return self.decoder(self.transform(hidden)) + self.bias


class MedLMHead(nn.Module):
    """``cls`` wrapper so the key names read ``cls.predictions.*`` as in BLIP."""

    def __init__(self, cfg: MedConfig):
        super().__init__()
        self.predictions = MedLMPrediction(cfg)

    def forward(self, hidden):
        """Vocabulary logits."""
        return self.predictions(hidden)


class MedDecoder(nn.Module):
    """Image-grounded text decoder: ``bert`` (a :class:`MedTextModel`) + ``cls`` LM head.

    The vocabulary projection is tied to ``bert.embeddings.word_embeddings`` (as in BLIP).
    """

    def __init__(self, cfg: MedConfig):
        super().__init__()
        self.bert = MedTextModel(cfg)
        self.cls = MedLMHead(cfg)
        init_bert_weights(self.cls, cfg.initializer_range)
        self.tie_output_embeddings()

    def tie_output_embeddings(self):
        """Make the LM projection share the decoder's input word embeddings."""
        self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight

    def forward(self, input_ids, attention_mask, image_embeds=None, image_atts=None,
                image_kv=None, past_self_kv=None, return_self_kv=False):
        """Vocabulary logits of a causal, image-grounded pass (see :meth:`MedTextModel.forward`)."""
        out = self.bert(input_ids, attention_mask, mode='decoder', image_embeds=image_embeds,
                        image_atts=image_atts, image_kv=image_kv, past_self_kv=past_self_kv,
                        return_self_kv=return_self_kv)
        if return_self_kv:
            hidden, self_kv = out
            return self.cls(hidden), self_kv
        return self.cls(out)


def lm_loss(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.1,
            reduction: str = 'mean') -> torch.Tensor:
    """Next-token cross-entropy (labels ``-100`` ignored), BLIP's label smoothing 0.1.

    ``reduction='none'`` returns the per-sequence sum (as BLIP's rank-based VQA needs); the
    smoothed mean runs :func:`~backbones.next_token_loss.shifted_smoothed_cross_entropy`
    (``F.cross_entropy``'s numbers with fewer passes over the logits).
    """
    if reduction == 'mean':
        loss = shifted_smoothed_cross_entropy if label_smoothing else shifted_cross_entropy
        return loss(logits.float(), labels, label_smoothing)
    per_token = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), labels[:, 1:],
                                ignore_index=-100, label_smoothing=label_smoothing,
                                reduction='none')
    return per_token.sum(dim=1)


SHARING_POLICIES = {
    # policy: which per-layer parts the decoder shares with the encoder (+ embeddings?)
    'all': ('attention', 'crossattention', 'ffn'),
    'all_but_ca': ('attention', 'ffn'),
    'all_but_sa': ('crossattention', 'ffn'),
    'none': (),
}


def share_encoder_decoder(encoder: MedTextModel, decoder: MedTextModel, policy: str):
    """Make ``decoder`` reuse the encoder's modules named by the sharing ``policy``.

    Shared modules are the *same* ``nn.Module`` objects, so their parameters are one set
    (counted once, updated once). Every policy but ``'none'`` also shares the embeddings
    (as BLIP's ``tie_encoder_decoder_weights``, which skips only the named part).
    """
    if policy not in SHARING_POLICIES:
        raise ValueError(f'sharing policy must be one of {sorted(SHARING_POLICIES)}, '
                         f'got {policy!r}')
    parts = SHARING_POLICIES[policy]
    if policy != 'none':
        decoder.embeddings = encoder.embeddings
    for enc_layer, dec_layer in zip(encoder.encoder.layer, decoder.encoder.layer):
        if 'attention' in parts:
            dec_layer.attention = enc_layer.attention
        if 'crossattention' in parts:
            dec_layer.crossattention = enc_layer.crossattention
        if 'ffn' in parts:
            dec_layer.intermediate = enc_layer.intermediate
            dec_layer.output = enc_layer.output
