"""ViT image encoders (timm) returning every token, [CLS] first.

BLIP's image encoder is a plain ViT whose parameter names are timm's
(``cls_token, pos_embed, patch_embed.proj, blocks.N.*, norm``), so we build timm's own
``VisionTransformer`` and keep its names: official BLIP and timm/DeiT checkpoints then load
without renaming.
"""
from functools import partial
from typing import Optional

import torch
import torch.nn.functional as F
from timm.layers import PatchEmbed
from timm.models import checkpoint_seq
from timm.models.vision_transformer import Block, VisionTransformer
from torch import nn

from backbones import fused_attention, fused_linear
from harness.core.registry import MODELS

VIT_SHAPES = {
    'vit_tiny_patch8': dict(patch_size=8, embed_dim=96, depth=2, num_heads=3),
    'vit_small_patch16': dict(patch_size=16, embed_dim=384, depth=12, num_heads=6),
    'vit_base_patch16': dict(patch_size=16, embed_dim=768, depth=12, num_heads=12),
    'vit_large_patch16': dict(patch_size=16, embed_dim=1024, depth=24, num_heads=16),
}


class MatmulPatchEmbed(PatchEmbed):
    """timm's ``PatchEmbed`` whose patch convolution runs as one matrix product on CUDA.

    The convolution's stride equals its kernel, so it is a product of each flattened patch
    with the flattened kernel. cuDNN runs ViT-B/16's in bf16 through a slow kernel (3.1 ms
    for 128 images at 384 px on an H200, the product 0.5 ms: ``benchmarks.suite``). On the
    CPU the convolution stays, so CPU runs keep their sums bit for bit. Parameters and their
    names are timm's (``proj.weight``, ``proj.bias``).
    """

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, N, width]`` patch embeddings of ``[B, C, H, W]`` images."""
        if images.is_cuda and self.flatten and not self.dynamic_img_pad and \
                tuple(images.shape[-2:]) == tuple(self.img_size):
            return self.embed_as_matmul(images)
        return super().forward(images)

    def embed_as_matmul(self, images: torch.Tensor) -> torch.Tensor:
        """The patch convolution as a product of flattened patches and kernel (any device)."""
        batch, channels, height, width = images.shape
        rows, columns = self.patch_size
        patches = images.reshape(batch, channels, height // rows, rows, width // columns,
                                 columns).permute(0, 2, 4, 1, 3, 5)
        patches = patches.reshape(batch, -1, channels * rows * columns)
        kernel = self.proj.weight.reshape(self.proj.out_channels, -1)
        return self.norm(F.linear(patches, kernel, self.proj.bias))


class FusedEpilogueBlock(Block):
    """timm's ViT block that can add its residuals and apply the MLP's GELU inside the
    products (:mod:`backbones.fused_linear`): the attention's output projection and the
    second MLP product with the residual add in their epilogues, the first MLP product with
    BLIP's exact GELU in its own.

    Parameters and names are timm's. With ``fuse_epilogues`` off (the default) this is timm's
    block. With it on, the fused path runs where the kernels serve (bf16 CUDA inference on a
    Hopper GPU with the kernels built) and the MLP is the plain one (exact GELU, no MLP norm,
    no layer scale); the attention joins when it is plain too (no query/key norms, output
    norm or gate, no layer scale, no mask), and with ``fuse_attention`` on as well, its
    softmax(q k^T) v runs in CUTLASS's attention kernel where that serves
    (:mod:`backbones.fused_attention`). Everywhere else, training included, timm's forward
    runs.
    """

    fuse_epilogues = False
    fuse_attention = False

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        """The block on ``[B, N, width]`` tokens; extra arguments go to the attention."""
        mlp = self.mlp
        # fc1's weight [hidden, width] has every size the other fused products have
        if not self.fuse_epilogues or self.training or not (
                fused_linear.serves(x, mlp.fc1.weight) and self.plain_mlp()):
            return super().forward(x, *args, **kwargs)
        if not args and not kwargs and self.plain_attention():
            x = self.attention_plus_residual(self.norm1(x), x)
        else:
            x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x), *args, **kwargs)))
        hidden = fused_linear.linear_gelu(self.norm2(x), mlp.fc1.weight, mlp.fc1.bias)
        return fused_linear.linear_residual(hidden, mlp.fc2.weight, mlp.fc2.bias, x)

    def attention_plus_residual(self, normed: torch.Tensor, residual: torch.Tensor
                                ) -> torch.Tensor:
        """``residual + attn(normed)``, the output projection fused with the add."""
        attn = self.attn
        batch, tokens, _ = normed.shape
        width, heads = attn.proj.in_features, attn.num_heads
        qkv = attn.qkv(normed).reshape(batch, tokens, 3, heads, width // heads)
        if self.fuse_attention and fused_attention.serves(qkv):
            mixed = fused_attention.packed_attention(qkv)
        else:
            mixed = fused_attention.sdpa_of_packed(qkv)
        return fused_linear.linear_residual(mixed, attn.proj.weight, attn.proj.bias, residual)

    def plain_mlp(self) -> bool:
        """Whether the MLP is ``fc2(gelu(fc1(x)))`` with biases and exact GELU."""
        mlp = self.mlp
        return (isinstance(mlp.act, nn.GELU) and mlp.act.approximate == 'none'
                and isinstance(mlp.norm, nn.Identity) and isinstance(self.ls2, nn.Identity)
                and mlp.fc1.bias is not None and mlp.fc2.bias is not None)

    def plain_attention(self) -> bool:
        """Whether the attention is ``proj(sdpa(qkv(x)))`` with a biased projection and
        nothing else (timm versions differ in which of the optional parts they have)."""
        attn = self.attn
        optional_parts = (getattr(attn, name, None) for name in ('q_norm', 'k_norm', 'norm'))
        return (all(part is None or isinstance(part, nn.Identity) for part in optional_parts)
                and getattr(attn, 'gate', None) is None and isinstance(self.ls1, nn.Identity)
                and attn.proj.bias is not None
                and attn.qkv.out_features == 3 * attn.proj.in_features)


@MODELS.register_module()
class BlipViT(VisionTransformer):
    """ViT image encoder that returns all tokens (``[B, 1 + num_patches, width]``).

    A timm ``VisionTransformer`` (so parameter names are timm's and BLIP's), whose
    ``forward`` returns the final-normed token sequence instead of a pooled vector.

    Args:
        arch: a key of :data:`VIT_SHAPES`; any of ``patch_size``/``embed_dim``/``depth``/
            ``num_heads`` given as keywords override it (``arch='custom'`` needs all four).
        image_size: square input resolution.
        drop_path_rate: stochastic depth rate (BLIP: 0.0 base, 0.1 large).
        grad_checkpointing: recompute block activations in backward to save memory.
        grad_checkpointing_layers: with ``grad_checkpointing``, only the last N blocks
            recompute (official BLIP's ``vit_ckpt_layer``); ``None``: every block.
        layer_norm_eps: 1e-6 as official BLIP/timm; Hugging Face BLIP uses 1e-5.
        fused_epilogues: add each block's residuals and apply its GELU inside the products
            (CUTLASS) where they serve (:class:`FusedEpilogueBlock`; bf16 inference on
            Hopper, needs nvcc and ``$BLIP_CUTLASS_DIR``); :meth:`set_fused_epilogues`
            switches it later. The parameters are the same either way.
        fused_attention: with ``fused_epilogues``, run each block's attention in CUTLASS's
            kernel on the packed QKV product where it serves (:mod:`backbones.fused_attention`;
            its bf16 results differ from cuDNN's by rounding).
    """

    def __init__(self,
                 arch='vit_base_patch16',
                 image_size=224,
                 drop_path_rate=0.0,
                 grad_checkpointing=False,
                 grad_checkpointing_layers: Optional[int] = None,
                 layer_norm_eps=1e-6,
                 mlp_ratio=4.0,
                 fused_epilogues=False,
                 fused_attention=False,
                 **shape):
        dims = dict(VIT_SHAPES.get(arch, {}))
        dims.update(shape)
        missing = {'patch_size', 'embed_dim', 'depth', 'num_heads'} - dims.keys()
        if missing:
            raise ValueError(f'BlipViT arch={arch!r} is unknown and the shape keys '
                             f'{sorted(missing)} are not given; use one of {sorted(VIT_SHAPES)} '
                             f'or pass them')
        super().__init__(
            img_size=image_size, num_classes=0, global_pool='', class_token=True,
            qkv_bias=True, mlp_ratio=mlp_ratio, drop_path_rate=drop_path_rate,
            norm_layer=partial(nn.LayerNorm, eps=layer_norm_eps), embed_layer=MatmulPatchEmbed,
            block_fn=FusedEpilogueBlock, **dims)
        self.arch = arch
        self.image_size = image_size
        self.width = dims['embed_dim']
        if grad_checkpointing_layers is not None and not 0 < grad_checkpointing_layers <= \
                dims['depth']:
            raise ValueError(f'BlipViT: grad_checkpointing_layers={grad_checkpointing_layers} '
                             f'must be between 1 and depth={dims["depth"]}, or None for all')
        self.set_grad_checkpointing(grad_checkpointing and grad_checkpointing_layers is None)
        self.checkpointed_blocks = grad_checkpointing_layers if grad_checkpointing else None
        self.set_fused_epilogues(fused_epilogues, attention=fused_attention)

    def set_fused_epilogues(self, enabled: bool, attention: bool = False) -> 'BlipViT':
        """Switches every block's fused products on or off, and with them on, its CUTLASS
        attention (``attention``); returns the encoder."""
        if attention and not enabled:
            raise ValueError('BlipViT: the fused attention runs inside the fused-epilogue '
                             'blocks; set fused_epilogues=True as well')
        for block in self.blocks:
            block.fuse_epilogues, block.fuse_attention = enabled, attention
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Encode ``[B, 3, H, W]`` images into ``[B, 1 + N, width]`` normalised tokens."""
        if self.checkpointed_blocks is None:
            return self.forward_features(images)
        x = self.norm_pre(self.patch_drop(self._pos_embed(self.patch_embed(images))))
        first = len(self.blocks) - self.checkpointed_blocks
        x = checkpoint_seq(self.blocks[first:], self.blocks[:first](x))
        return self.norm(x)


def interpolate_pos_embed(pos_embed: torch.Tensor, num_patches: int) -> torch.Tensor:
    """Bicubically resize a ``[1, 1 + N, D]`` ViT position table to ``num_patches`` patches.

    The [CLS] slot is kept as is; only the square patch grid is interpolated (as BLIP's
    ``interpolate_pos_embed`` does when a checkpoint is loaded at another resolution).
    """
    old_grid = int(round((pos_embed.shape[1] - 1) ** 0.5))
    new_grid = int(round(num_patches ** 0.5))
    if old_grid * old_grid != pos_embed.shape[1] - 1 or new_grid * new_grid != num_patches:
        raise ValueError(f'pos_embed of shape {tuple(pos_embed.shape)} is not a square grid '
                         f'plus [CLS]; cannot resize it to {num_patches} patches')
    if old_grid == new_grid:
        return pos_embed
    cls_slot, grid = pos_embed[:, :1], pos_embed[:, 1:]
    grid = grid.reshape(1, old_grid, old_grid, -1).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=(new_grid, new_grid), mode='bicubic', align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_grid * new_grid, -1).to(pos_embed.dtype)
    return torch.cat([cls_slot, grid], dim=1)
