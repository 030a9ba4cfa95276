"""FLOP counting with the SDPA handle, and parameter counting with shared modules."""
import torch
import torch.nn.functional as F
from torch import nn

from harness.flops import count_flops, count_parameters


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
