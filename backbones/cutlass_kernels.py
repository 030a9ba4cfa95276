"""The harness's CUTLASS kernels for Hopper as one shared library: built on first use, cached,
loaded through ctypes, and each kernel's tile configuration tuned per shape.

Two sources in :mod:`backbones.cuda` are compiled, one object per (kernel, tile configuration)
so that the build runs them in parallel:

* ``linear_epilogue.cu``: the products with a GELU or residual epilogue
  (:mod:`backbones.fused_linear`);
* ``attention.cu``: self-attention on a packed QKV product, through the forward kernels of
  CUTLASS's Hopper FMHA example (:mod:`backbones.fused_attention`).

They are compiled with ``nvcc`` (``$CUDACXX`` or ``nvcc`` on ``PATH``) against a CUTLASS
checkout named by ``$BLIP_CUTLASS_DIR`` (its ``include/`` and ``examples/88_hopper_fmha/`` are
read; 4.2 or newer), into ``$XDG_CACHE_HOME/blip_harness/kernels/``, keyed by the objects
(names and flags), their sources, CUTLASS's version and the compiler (:func:`library_path`).
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
from typing import Callable, Dict, Hashable, List, Optional, Sequence

import torch
from mmengine.logging import print_log

from harness.core.user_cache import user_cache_folder

SOURCES = pathlib.Path(__file__).with_name('cuda')
LINEAR_SOURCE = SOURCES / 'linear_epilogue.cu'
ATTENTION_SOURCE = SOURCES / 'attention.cu'
CUTLASS_ENV = 'BLIP_CUTLASS_DIR'
FMHA_EXAMPLE = pathlib.Path('examples') / '88_hopper_fmha'  # in a CUTLASS checkout
LINEAR_OPERATIONS = {'gelu': 0, 'residual': 1}  # BLIP_OP values in linear_epilogue.cu
LINEAR_CONFIGS = (0, 1, 2, 3, 4)  # BLIP_CONFIG values in linear_epilogue.cu (tile shapes)
ATTENTION_CONFIGS = (0,)  # BLIP_CONFIG values in attention.cu (tile shapes)
TUNING_REPEATS = 5
COMPILE_PEAK_BYTES = 3 << 30  # one CUTLASS object's nvcc peaks near 2.3 GiB (measured)

_ready: Dict[int, bool] = {}


class CutlassUnavailable(RuntimeError):
    """The CUTLASS kernels cannot be built or loaded here (the message says why and how)."""


def cache_root() -> pathlib.Path:
    """``$XDG_CACHE_HOME/blip_harness/kernels`` (``~/.cache`` when the variable is unset)."""
    return user_cache_folder('kernels')


def cutlass_root() -> pathlib.Path:
    """``$BLIP_CUTLASS_DIR``, checked to hold CUTLASS's headers and its Hopper FMHA example."""
    root = os.environ.get(CUTLASS_ENV)
    if not root:
        raise CutlassUnavailable(
            f'the CUTLASS kernels need CUTLASS 4.2 or newer: set {CUTLASS_ENV} to a checkout '
            f'of https://github.com/NVIDIA/cutlass (its include/ and {FMHA_EXAMPLE}/ are read)')
    root = pathlib.Path(root)
    if not (root / 'include' / 'cutlass' / 'version.h').is_file():
        raise CutlassUnavailable(
            f'{CUTLASS_ENV}={root} has no include/cutlass/version.h; point it at the root of a '
            f'CUTLASS checkout')
    if not (root / FMHA_EXAMPLE / 'kernel' / 'fmha_kernel_builder.hpp').is_file():
        raise CutlassUnavailable(
            f'{CUTLASS_ENV}={root} has no {FMHA_EXAMPLE}/kernel/fmha_kernel_builder.hpp (the '
            f'attention kernels\' headers): use a full CUTLASS 4.2 or newer checkout')
    return root


def nvcc_command() -> str:
    """``$CUDACXX``, else ``nvcc`` on ``PATH``."""
    nvcc = os.environ.get('CUDACXX') or shutil.which('nvcc')
    if not nvcc:
        raise CutlassUnavailable('the CUTLASS kernels need nvcc (CUDA 12.3 or newer): put it on '
                                 'PATH or set CUDACXX')
    return nvcc


def object_sources() -> Dict[str, tuple]:
    """Every object of the library: its file stem, keyed to (source, extra nvcc flags)."""
    objects = {f'linear_epilogue_{op}_{config}': (LINEAR_SOURCE,
                                                  [f'-DBLIP_OP={op}', f'-DBLIP_CONFIG={config}'])
               for op in LINEAR_OPERATIONS.values() for config in LINEAR_CONFIGS}
    # the softmax's exp2 as one ex2.approx instruction, as flash attention kernels take it
    objects.update({f'attention_{config}': (ATTENTION_SOURCE,
                                            ['--use_fast_math', f'-DBLIP_CONFIG={config}'])
                    for config in ATTENTION_CONFIGS})
    return objects


def compile_commands(nvcc: str, root: pathlib.Path, out_dir: pathlib.Path) -> Dict[str, list]:
    """One nvcc command per object, keyed by its object file."""
    commands = {}
    for stem, (source, flags) in object_sources().items():
        target = out_dir / f'{stem}.o'
        commands[str(target)] = [
            nvcc, '-std=c++17', '-O3', '-DNDEBUG', '--expt-relaxed-constexpr',
            '-gencode=arch=compute_90a,code=sm_90a', '-diag-suppress', '20012',
            '-Xcompiler', '-fPIC', f'-I{root / "include"}', f'-I{root / "examples"}', *flags,
            '-c', str(source), '-o', str(target)]
    return commands


def library_path(nvcc: str, root: pathlib.Path) -> pathlib.Path:
    """Where the library is cached, keyed by what builds it: its objects (names and flags),
    their sources, this CUTLASS and this compiler."""
    version = subprocess.run([nvcc, '--version'], capture_output=True, text=True).stdout
    objects = object_sources()
    sources = sorted({source for source, _ in objects.values()})
    digest = hashlib.sha256()
    for part in (repr(sorted((stem, flags) for stem, (_, flags) in objects.items())).encode(),
                 *(source.read_bytes() for source in sources),
                 (root / 'include' / 'cutlass' / 'version.h').read_bytes(), version.encode()):
        digest.update(part)
    return cache_root() / digest.hexdigest()[:16] / 'libblip_cutlass.so'


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


def build(nvcc: str, root: pathlib.Path, target: pathlib.Path) -> None:
    """Compiles the objects in parallel and links them into ``target`` (atomically); logs
    the start (a build takes minutes) and the time it took."""
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        commands = compile_commands(nvcc, root, pathlib.Path(scratch))
        workers = parallel_compiles(len(commands))
        print_log(f'building the CUTLASS kernels: {len(commands)} objects, {workers} at a time '
                  f'(minutes on a few cores) into {target}', logger='current')
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(
                lambda command: subprocess.run(command, capture_output=True, text=True),
                commands.values()))
        for command, result in zip(commands.values(), results):
            if result.returncode:
                source = command[command.index('-c') + 1]
                raise CutlassUnavailable(f'compiling {source} failed:\n{result.stderr}')
        linked = pathlib.Path(scratch) / target.name
        result = subprocess.run([nvcc, '-shared', '-o', str(linked), *commands],
                                capture_output=True, text=True)
        if result.returncode:
            raise CutlassUnavailable(f'linking {target.name} failed:\n{result.stderr}')
        os.replace(linked, target)
    print_log(f'CUTLASS kernels built in {time.monotonic() - started:.0f} s', logger='current')


def _declare(function, result, arguments: List) -> None:
    """Sets a ctypes function's result and argument types."""
    function.restype, function.argtypes = result, arguments


@functools.lru_cache(maxsize=1)
def library() -> ctypes.CDLL:
    """The compiled kernels (built on first use), with their C signatures declared."""
    nvcc, root = nvcc_command(), cutlass_root()
    path = library_path(nvcc, root)
    if not path.is_file():
        build(nvcc, root, path)
    lib = ctypes.CDLL(str(path))
    pointer, integer = ctypes.c_void_p, ctypes.c_int
    for op in LINEAR_OPERATIONS.values():
        for config in LINEAR_CONFIGS:
            _declare(getattr(lib, f'blip_linear_run_{op}_{config}'), integer,
                     [pointer] * 5 + [integer] * 5 + [pointer] * 2)
            _declare(getattr(lib, f'blip_linear_workspace_{op}_{config}'), ctypes.c_size_t,
                     [integer] * 4)
            if op == LINEAR_OPERATIONS['gelu']:
                _declare(getattr(lib, f'blip_linear_set_table_{op}_{config}'), integer,
                         [pointer] * 2)
    for config in ATTENTION_CONFIGS:
        _declare(getattr(lib, f'blip_attention_run_{config}'), integer,
                 [pointer] * 3 + [integer] * 6 + [pointer])
    return lib


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
            except CutlassUnavailable as reason:
                warnings.warn(f'CUTLASS kernels unavailable, the plain ops run: {reason}')
                _ready[device_index] = False
    return _ready[device_index]


def fastest_config(chosen: Dict[Hashable, int], key: Hashable, configs: Sequence[int],
                   launch: Callable[[int], None]) -> int:
    """The fastest of ``configs`` for ``key``, timed once (``launch(config)`` runs one; a
    configuration it raises RuntimeError for, one CUTLASS refuses, is left out) and kept in
    ``chosen``; a lone configuration untimed, and the first one while a CUDA graph is being
    captured, where nothing can be timed (and nothing is kept)."""
    if len(configs) == 1:
        return configs[0]
    if key not in chosen:
        if torch.cuda.is_current_stream_capturing():
            return configs[0]
        times, refusals = {}, []
        for config in configs:
            try:
                launch(config)  # warm-up
            except RuntimeError as refusal:  # CUTLASS cannot run this tile on this shape
                refusals.append(str(refusal))
                continue
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(TUNING_REPEATS):
                launch(config)
            end.record()
            end.synchronize()
            times[config] = start.elapsed_time(end)
        if not times:
            raise RuntimeError('no tile configuration runs: ' + '; '.join(refusals))
        chosen[key] = min(times, key=times.get)
    return chosen[key]


def tma_ready(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` contiguous and 16-byte aligned, as TMA reads it (copied only if not)."""
    tensor = tensor.contiguous()
    return tensor if tensor.data_ptr() % 16 == 0 else tensor.clone()
