"""CUTLASS's attention on the packed QKV product (Hopper) against PyTorch's, and the ViT.

Three parts, all in one process on one GPU, the anchors beside each number:

* values: each tile configuration of :func:`backbones.fused_attention.packed_attention` on
  random bf16 ``qkv`` ``[B, N, 3, H, 64]`` against float32 attention of the same inputs, beside
  ``F.scaled_dot_product_attention``'s bf16 error (cuDNN's kernel where PyTorch picks it); the
  output is poisoned with NaN first, so an unwritten element fails, and so does a maximum
  error above twice the SDPA's plus 2^-9. Token counts that are no multiple of any tile (577,
  the ViT's at 384 px; 197 at 224 px; 50) are the point. After a failure the kernels are
  still timed but the ViT is not, and the exit code is 1;
* attention at the ViT's shape: SDPA (PyTorch's choice, and its flash back-end) against each
  configuration (median milliseconds, Triton's do_bench, and TFLOP/s);
* the ViT (bf16 weights, inference): ``BlipViT(fused_epilogues=True)`` against the same with
  ``fused_attention=True``, eager and compiled, rounds alternating, in images/s, with each
  one's [CLS] cosine to the fp32 model.

Needs a Hopper GPU, nvcc and ``$BLIP_CUTLASS_DIR`` (:mod:`backbones.cutlass_kernels`)::

    BLIP_CUTLASS_DIR=~/src/cutlass python -m benchmarks.bench_fused_attention
"""
import sys
from typing import List, Optional

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from backbones import fused_attention
from backbones.vit import VIT_SHAPES
from benchmarks.bench_fused_linear import median_ms, vit_arguments_on_hopper, vit_rates

REFERENCE_CHUNK = 16  # images per float32 reference call (its scores are [chunk, H, N, N])


def random_qkv(images: int, tokens: int, heads: int) -> torch.Tensor:
    """bf16 ``[images, tokens, 3, heads, 64]`` with scores of about unit spread."""
    shape = (images, tokens, 3, heads, fused_attention.HEAD_SIZE)
    return torch.randn(shape, device='cuda').mul(1.5).bfloat16()


def value_errors(images: int, tokens: int, heads: int) -> List[str]:
    """Prints each configuration's and the SDPA's error against float32; returns failures."""
    qkv = random_qkv(images, tokens, heads)
    with sdpa_kernel(SDPBackend.MATH):
        exact = torch.cat([fused_attention.sdpa_of_packed(part.float())
                           for part in qkv.split(REFERENCE_CHUNK)])
    sdpa_error = (fused_attention.sdpa_of_packed(qkv).float() - exact).abs()
    shape = f'{images}x{tokens} tokens x {heads} heads'
    print(f'  {shape}, SDPA: max {sdpa_error.max():.3e}, mean {sdpa_error.mean():.3e}')
    failures = []
    lse = torch.empty(images * heads * tokens, device='cuda')
    for config in fused_attention.TILE_CONFIGS:
        out = torch.full(exact.shape, float('nan'), device='cuda', dtype=torch.bfloat16)
        fused_attention.launch(config, qkv, out, lse)
        error = (out.float() - exact).abs()
        unwritten = int(out.isnan().sum())
        print(f'  {shape}, config {config}: max {error.max():.3e}, mean {error.mean():.3e}'
              f'{f", {unwritten} unwritten" if unwritten else ""}')
        if unwritten or not error.max() <= 2 * sdpa_error.max() + 2 ** -9:
            failures.append(f'config {config} at {shape}: max error {error.max():.3e} '
                            f'(SDPA {sdpa_error.max():.3e}), {unwritten} unwritten')
    return failures


def attention_times(images: int, tokens: int, heads: int) -> None:
    """Prints median ms and TFLOP/s of SDPA (default, flash) and each configuration."""
    qkv = random_qkv(images, tokens, heads)
    flops = 4 * images * heads * tokens * tokens * fused_attention.HEAD_SIZE
    out = qkv.new_empty(images, tokens, heads * fused_attention.HEAD_SIZE)
    lse = torch.empty(images * heads * tokens, device='cuda')

    def flash():
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return fused_attention.sdpa_of_packed(qkv)

    runs = {'SDPA (PyTorch\'s choice)': lambda: fused_attention.sdpa_of_packed(qkv),
            'SDPA, flash back-end': flash}
    for config in fused_attention.TILE_CONFIGS:
        runs[f'CUTLASS config {config}'] = (
            lambda config=config: fused_attention.launch(config, qkv, out, lse))
    for name, run in runs.items():
        ms = median_ms(run)
        print(f'  {images}x{tokens} tokens x {heads} heads, {name}: {ms:.4f} ms, '
              f'{flops / ms / 1e9:.0f} TFLOP/s')


def main(argv: Optional[List[str]] = None) -> int:
    """Check values, then time the attention and the ViT; 1 on a value failure."""
    args = vit_arguments_on_hopper('bench_fused_attention', __doc__, argv)
    shape = VIT_SHAPES[args.arch]
    heads = shape['num_heads']
    tokens = (args.image_size // shape['patch_size']) ** 2 + 1
    print('values (absolute error against float32 attention):')
    with torch.inference_mode():
        failures = [failure for case in ((args.batch, tokens, heads), (64, 197, 12),
                                         (16, 50, 4), (3, 577, 1))
                    for failure in value_errors(*case)]
    print('attention:')
    with torch.inference_mode():
        attention_times(args.batch, tokens, heads)
    if failures:
        print('FAILED values, so no ViT rates: ' + '; '.join(failures))
        return 1
    print('ViT:')
    vit_rates(args.arch, args.image_size, args.batch, args.rounds,
              variants={'fused epilogues': dict(fused_epilogues=True),
                        'fused epilogues and attention': dict(fused_epilogues=True,
                                                              fused_attention=True)})
    return 0


if __name__ == '__main__':
    sys.exit(main())
