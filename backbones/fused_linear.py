"""bf16 linear layers with their GELU or residual add inside the product (Hopper, CUTLASS).

On an H200 the ViT's matrix products run at cuBLAS's speed, and what is left beside them is
element-wise work: BLIP's exact (erf) GELU after the first MLP product alone costs 0.32 ms a
block (ViT-B/16, 384 px, batch 128). cuBLAS can only fuse a tanh-approximate GELU, and
Triton's products are slower than cuBLAS's; CUTLASS's warp-specialized Hopper kernels take
any epilogue. :mod:`backbones.cuda`'s ``linear_epilogue.cu`` instantiates two of them (README,
"Fused ViT epilogues"):

* :func:`linear_gelu`: ``F.gelu`` of the bf16 product ``x @ w^T + b``, exact GELU: the sum is
  rounded to bf16 as the unfused path rounds it, and its GELU read from a table of
  ``F.gelu``'s own results for every bf16 value in [2^-10, 8) in magnitude (:func:`gelu_table`;
  outside that range the value times a scale from the same table: 0.5 below, 1 or 0 above),
  which costs less than computing the erf in the epilogue;
* :func:`linear_residual`: ``residual + (x @ w^T + b)``, summed in fp32 and rounded to bf16
  once, where the unfused path rounds the product before the add.

The kernels are built on first use (:mod:`backbones.cutlass_kernels`). :func:`serves` says
whether a call can take this path; everywhere else the callers keep ``F.linear``.
"""
from typing import Dict, Optional, Set, Tuple

import torch

from backbones import cutlass_kernels
from backbones.cutlass_kernels import tma_ready

OPERATIONS = cutlass_kernels.LINEAR_OPERATIONS
TILE_CONFIGS = cutlass_kernels.LINEAR_CONFIGS  # the tuner picks one per shape
ALIGNMENT = 8  # bf16 elements per 16-byte TMA access: K and N must be multiples of it
TABLE_LOW_EXPONENT, TABLE_EXPONENTS = 117, 13  # GeluOfBf16's table: magnitudes [2^-10, 8)
TABLE_MAGNITUDES = TABLE_EXPONENTS * 128  # bf16 magnitudes looked up, per sign
TABLE_SIGN_STRIDE = 2048  # rows from the positive values' first row to the negative ones'
# both signs' rows of 4 bytes, padded to whole KiB (kTableBytes / 4 in linear_epilogue.cu)
TABLE_ROWS = -(-(TABLE_SIGN_STRIDE + TABLE_MAGNITUDES + 2) // 256) * 256

_chosen_config: Dict[Tuple[str, int, int, int], int] = {}
_gelu_table_loaded: Set[int] = set()


def serves(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether ``x @ weight^T`` can run fused: bf16 CUDA tensors on a Hopper GPU (sm_90),
    sizes TMA can address, no autograd (there is no backward), and the kernels loadable."""
    return (x.is_cuda and x.dtype == torch.bfloat16 and weight.dtype == torch.bfloat16
            and weight.dim() == 2 and x.shape[-1] == weight.shape[1]
            and weight.shape[0] % ALIGNMENT == 0 and weight.shape[1] % ALIGNMENT == 0
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
            and cutlass_kernels.kernels_ready(x.device.index or 0))


def gelu_table(device: torch.device) -> torch.Tensor:
    """The GELU epilogue's table, in the kernel's order, as int32 rows of two bf16 bit patterns:
    ``scale`` in the low half and ``addend`` in the high one, the result of a value ``x`` being
    ``bf16(x * scale + addend)``. For each sign (negative values from ``TABLE_SIGN_STRIDE`` rows
    on): (0.5, -0) for magnitudes below 2^-10; (0, ``F.gelu`` of the value, computed by ``F.gelu``
    itself on ``device``) for each magnitude from 2^-10 on (``TABLE_MAGNITUDES``:
    ``TABLE_EXPONENTS`` exponents, 128 mantissas each); (1 positive, 0 negative; -0) for 8 and
    above. Zeros fill the rest of ``TABLE_ROWS``."""
    magnitudes = (TABLE_LOW_EXPONENT << 7) + torch.arange(TABLE_MAGNITUDES, dtype=torch.int32)
    table = torch.zeros(TABLE_ROWS, dtype=torch.int32)
    for sign, scale_above in ((0, 1.0), (1, 0.0)):
        values = ((sign << 15) | magnitudes).to(torch.int16).view(torch.bfloat16).to(device)
        gelus = torch.nn.functional.gelu(values).cpu()
        scales = torch.tensor([0.5, *[0.0] * TABLE_MAGNITUDES, scale_above]).bfloat16()
        addends = torch.cat([torch.tensor([-0.0]).bfloat16(), gelus,
                             torch.tensor([-0.0]).bfloat16()])
        first = sign * TABLE_SIGN_STRIDE
        table[first:first + TABLE_MAGNITUDES + 2] = bf16_bits(scales) | (bf16_bits(addends) << 16)
    return table.to(device)


def bf16_bits(values: torch.Tensor) -> torch.Tensor:
    """The bit patterns of bf16 ``values`` as non-negative int32 (0 to 0xFFFF)."""
    return values.view(torch.int16).to(torch.int32) & 0xFFFF


def _load_gelu_table(device: torch.device) -> None:
    """Copies :func:`gelu_table` to where each GELU kernel on ``device`` reads it: once per
    device, before its first GELU product, which must not be inside a CUDA graph capture."""
    index = device.index or 0
    if index in _gelu_table_loaded:
        return
    if torch.cuda.is_current_stream_capturing():
        raise RuntimeError('the fused GELU product first ran inside a CUDA graph capture: run it '
                           'once outside the capture (a warm-up call) so that its table is set')
    table = gelu_table(device)
    stream = torch.cuda.current_stream(device)
    lib = cutlass_kernels.library()
    with torch.cuda.device(index):
        for config in TILE_CONFIGS:
            status = getattr(lib, f'blip_linear_set_table_{OPERATIONS["gelu"]}_{config}')(
                table.data_ptr(), stream.cuda_stream)
            if status:
                raise RuntimeError(f'copying the GELU table failed with CUDA error {status}')
    stream.synchronize()
    _gelu_table_loaded.add(index)


def launch(op: str, config: int, x, weight, bias, residual, out) -> None:
    """Runs ``op`` with tile configuration ``config`` into ``out`` on the current stream
    (2-D, contiguous, 16-byte-aligned operands; ``residual`` None for GELU); raises with
    CUTLASS's status on failure."""
    rows, (features, inputs) = out.shape[0], weight.shape
    sms = torch.cuda.get_device_properties(x.device).multi_processor_count
    code = OPERATIONS[op]
    lib = cutlass_kernels.library()
    if op == 'gelu':
        _load_gelu_table(x.device)
    size = getattr(lib, f'blip_linear_workspace_{code}_{config}')(rows, features, inputs, sms)
    workspace = torch.empty(size, dtype=torch.uint8, device=x.device) if size else None
    status = getattr(lib, f'blip_linear_run_{code}_{config}')(
        x.data_ptr(), weight.data_ptr(), bias.data_ptr(),
        None if residual is None else residual.data_ptr(), out.data_ptr(),
        rows, features, inputs, sms, x.device.index or 0,
        None if workspace is None else workspace.data_ptr(),
        torch.cuda.current_stream(x.device).cuda_stream)
    if status:
        raise RuntimeError(f'fused linear ({op}, tile config {config}) failed with status '
                           f'{status} for x {tuple(x.shape)}, weight {tuple(weight.shape)}')


def _tile_config(op: str, x, weight, bias, residual, out) -> int:
    """The fastest tile configuration for this shape (:func:`cutlass_kernels.fastest_config`)."""
    return cutlass_kernels.fastest_config(
        _chosen_config, (op, out.shape[0], *weight.shape), TILE_CONFIGS,
        lambda config: launch(op, config, x, weight, bias, residual, out))


def _fused(op: str, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
           residual: Optional[torch.Tensor]) -> torch.Tensor:
    """``x @ weight^T + bias`` followed by ``op`` over the flattened leading dimensions."""
    shape = (*x.shape[:-1], weight.shape[0])
    if residual is not None and tuple(residual.shape) != shape:
        raise ValueError(f'linear_residual: residual of shape {tuple(residual.shape)} does not '
                         f'match the product\'s {shape} (x {tuple(x.shape)}, weight '
                         f'{tuple(weight.shape)})')
    rows = tma_ready(x.reshape(-1, x.shape[-1]))
    out = torch.empty(rows.shape[0], weight.shape[0], dtype=x.dtype, device=x.device)
    if out.numel() == 0:
        return out.reshape(shape)
    flat_residual = None if residual is None else tma_ready(residual.reshape(out.shape))
    operands = (rows, tma_ready(weight), tma_ready(bias.to(weight.dtype)), flat_residual, out)
    launch(op, _tile_config(op, *operands), *operands)
    return out.reshape(shape)


@torch.library.custom_op('blip_harness::linear_gelu', mutates_args=())
def linear_gelu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``F.gelu(F.linear(x, weight, bias))`` (exact GELU of the bf16 product) as one fused
    product."""
    return _fused('gelu', x, weight, bias, None)


@torch.library.custom_op('blip_harness::linear_residual', mutates_args=())
def linear_residual(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                    residual: torch.Tensor) -> torch.Tensor:
    """``residual + F.linear(x, weight, bias)`` as one fused product."""
    return _fused('residual', x, weight, bias, residual)


@linear_gelu.register_fake
def _linear_gelu_shape(x, weight, bias):
    return _output_like(x, weight)


@linear_residual.register_fake
def _linear_residual_shape(x, weight, bias, residual):
    return _output_like(x, weight)


def _output_like(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """An empty tensor of the fused product's shape: ``x``'s with ``weight``'s outputs."""
    return x.new_empty(*x.shape[:-1], weight.shape[0])
