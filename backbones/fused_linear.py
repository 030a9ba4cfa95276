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
  outside that range the value times a multiplier from the same table: 0.5 below, 1 or 0
  above), which costs less than computing the erf in the epilogue;
* :func:`linear_residual`: ``residual + (x @ w^T + b)``, summed in fp32 and rounded to bf16
  once, where the unfused path rounds the product before the add.

The kernels are compiled on first use with ``nvcc`` (``$CUDACXX`` or ``nvcc`` on ``PATH``)
against a CUTLASS checkout named by ``$BLIP_CUTLASS_DIR`` (its ``include/`` is enough), into
``$XDG_CACHE_HOME/blip_harness/kernels/`` keyed by source, CUTLASS version and compiler.
:func:`serves` says whether a call can take this path; everywhere else the callers keep
``F.linear``.
"""
import ctypes
import functools
import hashlib
import os
import pathlib
import shutil
import subprocess
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Optional, Set, Tuple

import torch
from mmengine.logging import print_log

from harness.core.user_cache import user_cache_folder

SOURCE = pathlib.Path(__file__).with_name('cuda') / 'linear_epilogue.cu'
CUTLASS_ENV = 'BLIP_CUTLASS_DIR'
OPERATIONS = {'gelu': 0, 'residual': 1}  # BLIP_OP values in linear_epilogue.cu
TILE_CONFIGS = (0, 1, 2, 3, 4)  # BLIP_CONFIG values (tile shapes); the tuner picks per shape
ALIGNMENT = 8  # bf16 elements per 16-byte TMA access: K and N must be multiples of it
TUNING_REPEATS = 5
COMPILE_PEAK_BYTES = 3 << 30  # one CUTLASS object's nvcc peaks near 2.3 GiB (measured)
TABLE_LOW_EXPONENT, TABLE_EXPONENTS = 117, 13  # GeluOfBf16's table: magnitudes [2^-10, 8)
TABLE_MAGNITUDES = TABLE_EXPONENTS * 128  # bf16 magnitudes looked up, per sign

_chosen_config: Dict[Tuple[str, int, int, int], int] = {}
_ready: Dict[int, bool] = {}
_gelu_table_loaded: Set[int] = set()


class FusedLinearUnavailable(RuntimeError):
    """The fused kernels cannot be built or loaded here (the message says why and how)."""


def cache_root() -> pathlib.Path:
    """``$XDG_CACHE_HOME/blip_harness/kernels`` (``~/.cache`` when the variable is unset)."""
    return user_cache_folder('kernels')


def cutlass_include() -> pathlib.Path:
    """``$BLIP_CUTLASS_DIR/include``, checked to hold CUTLASS's headers."""
    root = os.environ.get(CUTLASS_ENV)
    if not root:
        raise FusedLinearUnavailable(
            f'fused linear kernels need CUTLASS 3.5 or newer: set {CUTLASS_ENV} to a checkout '
            f'of https://github.com/NVIDIA/cutlass (only its include/ is read)')
    include = pathlib.Path(root) / 'include'
    if not (include / 'cutlass' / 'version.h').is_file():
        raise FusedLinearUnavailable(
            f'{CUTLASS_ENV}={root} has no include/cutlass/version.h; point it at the root of a '
            f'CUTLASS checkout')
    return include


def nvcc_command() -> str:
    """``$CUDACXX``, else ``nvcc`` on ``PATH``."""
    nvcc = os.environ.get('CUDACXX') or shutil.which('nvcc')
    if not nvcc:
        raise FusedLinearUnavailable('fused linear kernels need nvcc (CUDA 12.3 or newer): put '
                                     'it on PATH or set CUDACXX')
    return nvcc


def compile_commands(nvcc: str, include: pathlib.Path, out_dir: pathlib.Path) -> Dict[str, list]:
    """One nvcc command per (operation, tile configuration), keyed by its object file."""
    commands = {}
    for op in OPERATIONS.values():
        for config in TILE_CONFIGS:
            target = out_dir / f'linear_epilogue_{op}_{config}.o'
            commands[str(target)] = [
                nvcc, '-std=c++17', '-O3', '-DNDEBUG', '--expt-relaxed-constexpr',
                '-gencode=arch=compute_90a,code=sm_90a', '-diag-suppress', '20012',
                '-Xcompiler', '-fPIC', f'-I{include}', f'-DBLIP_OP={op}',
                f'-DBLIP_CONFIG={config}', '-c', str(SOURCE), '-o', str(target)]
    return commands


def library_path(nvcc: str, include: pathlib.Path) -> pathlib.Path:
    """Where the shared library built from this source, CUTLASS and compiler is cached."""
    version = subprocess.run([nvcc, '--version'], capture_output=True, text=True).stdout
    digest = hashlib.sha256()
    for part in (SOURCE.read_bytes(), (include / 'cutlass' / 'version.h').read_bytes(),
                 version.encode()):
        digest.update(part)
    return cache_root() / digest.hexdigest()[:16] / 'liblinear_epilogue.so'


def available_memory_bytes(meminfo: str = '/proc/meminfo') -> Optional[int]:
    """``MemAvailable`` of ``meminfo`` in bytes; None where the system does not say."""
    try:
        for line in pathlib.Path(meminfo).read_text().splitlines():
            if line.startswith('MemAvailable:'):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity where the platform says, else all)."""
    if hasattr(os, 'sched_getaffinity'):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def parallel_compiles(objects: int) -> int:
    """How many nvcc processes to run at once: one per object, but no more than the CPUs
    this process may use, nor than the available memory holds (ten at once ran a 24 GiB
    machine out of it); at least one."""
    limits = [objects, usable_cpus()]
    memory = available_memory_bytes()
    if memory is not None:
        limits.append(memory // COMPILE_PEAK_BYTES)
    return max(1, min(limits))


def build(nvcc: str, include: pathlib.Path, target: pathlib.Path) -> None:
    """Compiles the objects in parallel and links them into ``target`` (atomically); logs
    the start (a build takes minutes) and the time it took."""
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        commands = compile_commands(nvcc, include, pathlib.Path(scratch))
        workers = parallel_compiles(len(commands))
        print_log(f'building the fused linear kernels: {len(commands)} CUTLASS objects, '
                  f'{workers} at a time (minutes on a few cores) into {target}',
                  logger='current')
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(
                lambda command: subprocess.run(command, capture_output=True, text=True),
                commands.values()))
        for result in results:
            if result.returncode:
                raise FusedLinearUnavailable(f'compiling {SOURCE} failed:\n{result.stderr}')
        linked = pathlib.Path(scratch) / target.name
        result = subprocess.run([nvcc, '-shared', '-o', str(linked), *commands],
                                capture_output=True, text=True)
        if result.returncode:
            raise FusedLinearUnavailable(f'linking {target.name} failed:\n{result.stderr}')
        os.replace(linked, target)
    print_log(f'fused linear kernels built in {time.monotonic() - started:.0f} s',
              logger='current')


@functools.lru_cache(maxsize=1)
def library() -> ctypes.CDLL:
    """The compiled kernels (built on first use), with their C signatures declared."""
    nvcc, include = nvcc_command(), cutlass_include()
    path = library_path(nvcc, include)
    if not path.is_file():
        build(nvcc, include, path)
    lib = ctypes.CDLL(str(path))
    for op in OPERATIONS.values():
        for config in TILE_CONFIGS:
            run = getattr(lib, f'blip_linear_run_{op}_{config}')
            run.restype = ctypes.c_int
            run.argtypes = [ctypes.c_void_p] * 5 + [ctypes.c_int] * 5 + [ctypes.c_void_p] * 2
            workspace = getattr(lib, f'blip_linear_workspace_{op}_{config}')
            workspace.restype = ctypes.c_size_t
            workspace.argtypes = [ctypes.c_int] * 4
            if op == OPERATIONS['gelu']:
                set_table = getattr(lib, f'blip_linear_set_table_{op}_{config}')
                set_table.restype = ctypes.c_int
                set_table.argtypes = [ctypes.c_void_p] * 2
    return lib


def serves(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether ``x @ weight^T`` can run fused: bf16 CUDA tensors on a Hopper GPU (sm_90),
    sizes TMA can address, no autograd (there is no backward), and the kernels loadable."""
    return (x.is_cuda and x.dtype == torch.bfloat16 and weight.dtype == torch.bfloat16
            and weight.dim() == 2 and x.shape[-1] == weight.shape[1]
            and weight.shape[0] % ALIGNMENT == 0 and weight.shape[1] % ALIGNMENT == 0
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
            and kernels_ready(x.device.index or 0))


@torch.compiler.assume_constant_result
def kernels_ready(device_index: int) -> bool:
    """Whether the kernels run on this GPU: a Hopper one, and the library built and loaded
    (the first failure is warned about once, with its reason; torch.compile takes the answer
    as a constant)."""
    if device_index not in _ready:
        _ready[device_index] = torch.cuda.get_device_capability(device_index) == (9, 0)
        if _ready[device_index]:
            try:
                library()
            except FusedLinearUnavailable as reason:
                warnings.warn(f'fused linear kernels unavailable, plain products run: {reason}')
                _ready[device_index] = False
    return _ready[device_index]


def gelu_table(device: torch.device) -> torch.Tensor:
    """The GELU epilogue's table as int16 bit patterns of bf16 values, in the kernel's order:
    for each sign, the multiplier 0.5 for magnitudes below 2^-10, ``F.gelu`` (computed by
    ``F.gelu`` itself on ``device``) of each magnitude from 2^-10 on (``TABLE_MAGNITUDES``:
    ``TABLE_EXPONENTS`` exponents, 128 mantissas each), the multiplier for 8 and above
    (1 positive, 0 negative); zeros pad it to whole 16-byte copies."""
    magnitudes = (TABLE_LOW_EXPONENT << 7) + torch.arange(TABLE_MAGNITUDES, dtype=torch.int32)
    parts = []
    for sign, multiplier_above in ((0, 1.0), (1, 0.0)):
        values = ((sign << 15) | magnitudes).to(torch.int16).view(torch.bfloat16).to(device)
        parts += [values.new_tensor([0.5]), torch.nn.functional.gelu(values),
                  values.new_tensor([multiplier_above])]
    table = torch.cat(parts)
    padding = table.new_zeros(-table.numel() % 8)
    return torch.cat([table, padding]).view(torch.int16)


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
    lib = library()
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
    lib = library()
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
    """The fastest tile configuration for this shape, timed once per shape (one CUTLASS
    refuses is left out; config 0 while a CUDA graph is being captured, where nothing can be
    timed)."""
    key = (op, out.shape[0], *weight.shape)
    if key not in _chosen_config:
        if torch.cuda.is_current_stream_capturing():
            return TILE_CONFIGS[0]
        times, refusals = {}, []
        for config in TILE_CONFIGS:
            try:
                launch(op, config, x, weight, bias, residual, out)  # warm-up
            except RuntimeError as refusal:  # CUTLASS cannot run this tile on this shape
                refusals.append(str(refusal))
                continue
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(TUNING_REPEATS):
                launch(op, config, x, weight, bias, residual, out)
            end.record()
            end.synchronize()
            times[config] = start.elapsed_time(end)
        if not times:
            raise RuntimeError('no tile configuration runs: ' + '; '.join(refusals))
        _chosen_config[key] = min(times, key=times.get)
    return _chosen_config[key]


def _tma_ready(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` contiguous and 16-byte aligned, as TMA reads it (copied only if not)."""
    tensor = tensor.contiguous()
    return tensor if tensor.data_ptr() % 16 == 0 else tensor.clone()


def _fused(op: str, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
           residual: Optional[torch.Tensor]) -> torch.Tensor:
    """``x @ weight^T + bias`` followed by ``op`` over the flattened leading dimensions."""
    shape = (*x.shape[:-1], weight.shape[0])
    if residual is not None and tuple(residual.shape) != shape:
        raise ValueError(f'linear_residual: residual of shape {tuple(residual.shape)} does not '
                         f'match the product\'s {shape} (x {tuple(x.shape)}, weight '
                         f'{tuple(weight.shape)})')
    rows = _tma_ready(x.reshape(-1, x.shape[-1]))
    out = torch.empty(rows.shape[0], weight.shape[0], dtype=x.dtype, device=x.device)
    if out.numel() == 0:
        return out.reshape(shape)
    flat_residual = None if residual is None else _tma_ready(residual.reshape(out.shape))
    operands = (rows, _tma_ready(weight), _tma_ready(bias.to(weight.dtype)), flat_residual, out)
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
