"""FLOP counting with the SDPA and fused-MHA handles, and parameter counting with shared
modules."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.core.registry import MODELS
from harness.flops import count_flops, count_parameters, skipped_ops


class _TinyAttention(nn.Module):
    """One linear projection followed by self-attention through SDPA."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        heads = x.view(batch, tokens, 2, dim // 2).transpose(1, 2)
        attended = F.scaled_dot_product_attention(heads, heads, heads)
        return self.proj(attended.transpose(1, 2).reshape(batch, tokens, dim))


def test_sdpa_flops_are_counted_analytically():
    batch, tokens, dim = 2, 5, 8
    heads, head_dim = 2, dim // 2
    expected_attention = batch * heads * tokens * tokens * head_dim * 2  # q@k^T and attn@v
    expected_linear = batch * tokens * dim * dim
    flops = count_flops(_TinyAttention(dim), torch.randn(batch, tokens, dim))
    assert flops == expected_attention + expected_linear


class _TorchSelfAttention(nn.Module):
    """Self-attention through ``nn.MultiheadAttention`` (batch first, even head count)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(x, x, x, need_weights=False)[0]


def _expected_self_attention_flops(batch: int, tokens: int, dim: int) -> int:
    """Hand-written self-attention from shapes, multiply-adds counted once."""
    qkv_projections = 3 * batch * tokens * dim * dim
    scores_and_weighted_sum = 2 * batch * tokens * tokens * dim  # summed over heads
    output_projection = batch * tokens * dim * dim
    return qkv_projections + scores_and_weighted_sum + output_projection


@pytest.mark.parametrize('training', [False, True])
def test_multihead_attention_fast_and_slow_paths_count_like_hand_written(training):
    batch, tokens, dim, heads = 2, 5, 8, 2
    module = _TorchSelfAttention(dim, heads).train(training)
    # eval + no_grad (count_flops disables grad) is the fused aten::_native_multi_head_attention
    # fast path; training mode goes through linear + SDPA ops instead.
    x = torch.randn(batch, tokens, dim)
    with torch.no_grad():
        graph = str(torch.jit.trace(module, (x,)).inlined_graph)
    assert ('aten::_native_multi_head_attention' in graph) is not training
    assert count_flops(module, x) == _expected_self_attention_flops(batch, tokens, dim)


def test_count_flops_accepts_a_plain_function():
    linear = nn.Linear(4, 3, bias=False)
    assert count_flops(lambda x: linear(x), (torch.randn(6, 4),)) == 6 * 4 * 3


class _SharedBlock(nn.Module):
    """Two branches that reuse one linear layer, plus a weight tied to it."""

    def __init__(self):
        super().__init__()
        self.shared = nn.Linear(4, 4)
        self.encoder = nn.Sequential(self.shared)
        self.decoder = nn.Sequential(self.shared, nn.Linear(4, 2))
        self.tied = nn.Linear(4, 4, bias=False)
        self.tied.weight = self.shared.weight


def test_shared_parameters_count_once():
    assert count_parameters(_SharedBlock()) == (4 * 4 + 4) + (4 * 2 + 2)


def test_blip_vit_counts_every_matmul_and_skips_only_elementwise_ops():
    vit = MODELS.build(dict(type='BlipViT', arch='vit_tiny_patch8', image_size=64)).eval()
    image = torch.zeros(1, 3, 64, 64)
    assert set(skipped_ops(vit, image)) <= {'aten::add', 'aten::gelu'}
    tokens, dim, depth = 1 + (64 // 8) ** 2, 96, 2
    patch_embedding = (64 // 8) ** 2 * dim * 3 * 8 * 8
    per_block = 12 * tokens * dim * dim + 2 * tokens * tokens * dim  # qkv+proj+MLP, attention
    layer_norms = (2 * depth + 1) * tokens * dim * 5  # fvcore counts 5 per element (affine)
    assert count_flops(vit, image) == patch_embedding + depth * per_block + layer_norms
