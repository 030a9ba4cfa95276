"""Example backbone plugin: patch embedding + one MLP, tokens with a mean-pooled token first.

The whole contract (``harness.core.model_api.ImageBackbone``): ``forward(images)`` returns
``[B, 1 + N, width]`` tokens, pooled token first, and ``embed_dim`` is ``width``.
"""
import torch
from torch import nn

from harness.core.registry import MODELS


@MODELS.register_module()
class PatchMLPBackbone(nn.Module):
    """Non-overlapping patches, a linear embedding and an MLP; [CLS] = mean of the patches."""

    def __init__(self, image_size: int = 32, patch_size: int = 8, embed_dim: int = 64):
        super().__init__()
        self.embed_dim = embed_dim
        self.patch_embed = nn.Conv2d(3, embed_dim, patch_size, stride=patch_size)
        self.mlp = nn.Sequential(nn.LayerNorm(embed_dim), nn.Linear(embed_dim, embed_dim),
                                 nn.GELU())
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, S, S]`` -> ``[B, 1 + (S / patch)^2, embed_dim]``."""
        patches = self.patch_embed(images).flatten(2).transpose(1, 2)
        patches = patches + self.mlp(patches)
        return self.norm(torch.cat([patches.mean(dim=1, keepdim=True), patches], dim=1))
