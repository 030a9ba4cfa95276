"""A ViT's self-attention read straight from its packed QKV product (Hopper, CUTLASS).

:mod:`backbones.cuda`'s ``attention.cu`` runs the forward kernels of CUTLASS's Hopper FMHA
example on the ``[B, N, 3, H, 64]`` output of the ``qkv`` linear as it is and writes the
``[B, N, H * 64]`` layout the output projection reads. At the ViT's shape (577 tokens, 12 heads
of 64, batch 128) it took 0.419 ms a block on an H100 against 0.431 for PyTorch's fastest
attention, cuDNN's (README, "CUTLASS's attention kernel in the ViT"). Its bf16 results are not
cuDNN's bits (no two attention kernels sum alike); their error against float32 is checked on
the GPU by ``benchmarks.bench_fused_attention``.

:func:`serves` says whether a call can take this path; everywhere else :func:`sdpa_of_packed`
runs ``F.scaled_dot_product_attention`` on the same layout.
"""
from typing import Dict, Tuple

import torch
import torch.nn.functional as F

from backbones import cutlass_kernels

HEAD_SIZE = 64  # the only head size attention.cu is built for
TILE_CONFIGS = cutlass_kernels.ATTENTION_CONFIGS

_chosen_config: Dict[Tuple[int, int, int], int] = {}


def serves(qkv: torch.Tensor) -> bool:
    """Whether ``qkv`` can take the CUTLASS path: on a Hopper GPU, laid out as
    :func:`layout_fits` asks, no autograd (there is no backward), and the kernels loadable."""
    return (qkv.is_cuda and layout_fits(qkv)
            and not (torch.is_grad_enabled() and qkv.requires_grad)
            and cutlass_kernels.kernels_ready(qkv.device.index or 0))


def layout_fits(qkv: torch.Tensor) -> bool:
    """Whether ``qkv`` is the kernel's ``[B, N, 3, H, 64]``, bf16 and contiguous (TMA's bounds
    take any N; a start off 16 bytes is copied by :func:`packed_attention`, which is all
    torch.compile could not check here)."""
    return (qkv.dtype == torch.bfloat16 and qkv.dim() == 5 and qkv.shape[2] == 3
            and qkv.shape[4] == HEAD_SIZE and qkv.is_contiguous())


def sdpa_of_packed(qkv: torch.Tensor) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` of every head of ``qkv`` ``[B, N, 3, H, D]``, as
    ``[B, N, H * D]`` (the plain path, and the definition of :func:`packed_attention`)."""
    images, tokens = qkv.shape[:2]
    query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)
    mixed = F.scaled_dot_product_attention(query, key, value)
    return mixed.transpose(1, 2).reshape(images, tokens, -1)


def launch(config: int, qkv: torch.Tensor, out: torch.Tensor, lse: torch.Tensor) -> None:
    """Runs tile configuration ``config`` on the current stream, ``out`` ``[B, N, H * 64]``
    bf16 and ``lse`` ``B * H * N`` float32 (the softmax's log-sum-exp, which the kernel
    writes); raises with the kernel's status on failure."""
    images, tokens, _, heads, head_size = qkv.shape
    device = qkv.device
    status = getattr(cutlass_kernels.library(), f'blip_attention_run_{config}')(
        qkv.data_ptr(), out.data_ptr(), lse.data_ptr(), images, tokens, heads, head_size,
        torch.cuda.get_device_properties(device).multi_processor_count, device.index or 0,
        torch.cuda.current_stream(device).cuda_stream)
    if status:
        raise RuntimeError(f'fused attention (tile config {config}) failed with status '
                           f'{status} for qkv {tuple(qkv.shape)}')


@torch.library.custom_op('blip_harness::packed_attention', mutates_args=())
def packed_attention(qkv: torch.Tensor) -> torch.Tensor:
    """:func:`sdpa_of_packed` (softmax scale ``64 ** -0.5``, no mask) as one CUTLASS kernel,
    for a ``qkv`` that :func:`serves`."""
    qkv = cutlass_kernels.tma_ready(qkv)
    images, tokens, _, heads, head_size = qkv.shape
    out = qkv.new_empty(images, tokens, heads * head_size)
    lse = torch.empty(images * heads * tokens, dtype=torch.float32, device=qkv.device)
    config = cutlass_kernels.fastest_config(
        _chosen_config, (images, tokens, heads), TILE_CONFIGS,
        lambda candidate: launch(candidate, qkv, out, lse))
    launch(config, qkv, out, lse)
    return out


@packed_attention.register_fake
def _packed_attention_shape(qkv):
    return qkv.new_empty(qkv.shape[0], qkv.shape[1], qkv.shape[3] * qkv.shape[4])
