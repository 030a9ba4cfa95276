"""The CUTLASS kernels' library, CPU side: what it needs and says when it is missing, how it
is compiled, cached and linked, how many compilers run at once, and how a kernel's tile
configuration is chosen. (The kernels themselves run on the GPU: ``benchmarks.
bench_fused_linear`` and ``benchmarks.bench_fused_attention`` check their values.)"""
import pathlib
import sys

import pytest
import torch

from backbones import cutlass_kernels


def cutlass_checkout(root: pathlib.Path, example: bool = True) -> pathlib.Path:
    """A directory laid out as much like a CUTLASS checkout as the build reads."""
    (root / 'include' / 'cutlass').mkdir(parents=True)
    (root / 'include' / 'cutlass' / 'version.h').write_text('#define CUTLASS_MAJOR 4\n')
    if example:
        kernel = root / cutlass_kernels.FMHA_EXAMPLE / 'kernel'
        kernel.mkdir(parents=True)
        (kernel / 'fmha_kernel_builder.hpp').write_text('#pragma once\n')
    return root


def test_missing_cutlass_is_named_with_the_fix(monkeypatch):
    monkeypatch.delenv(cutlass_kernels.CUTLASS_ENV, raising=False)
    with pytest.raises(cutlass_kernels.CutlassUnavailable, match=cutlass_kernels.CUTLASS_ENV):
        cutlass_kernels.cutlass_root()


def test_a_directory_without_cutlass_headers_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv(cutlass_kernels.CUTLASS_ENV, str(tmp_path))
    with pytest.raises(cutlass_kernels.CutlassUnavailable, match='version.h'):
        cutlass_kernels.cutlass_root()


def test_a_checkout_without_the_fmha_example_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv(cutlass_kernels.CUTLASS_ENV, str(cutlass_checkout(tmp_path, False)))
    with pytest.raises(cutlass_kernels.CutlassUnavailable, match='88_hopper_fmha'):
        cutlass_kernels.cutlass_root()
    cutlass_checkout(tmp_path / 'full')
    monkeypatch.setenv(cutlass_kernels.CUTLASS_ENV, str(tmp_path / 'full'))
    assert cutlass_kernels.cutlass_root() == tmp_path / 'full'


def test_missing_nvcc_is_named(monkeypatch):
    monkeypatch.delenv('CUDACXX', raising=False)
    monkeypatch.setenv('PATH', '')
    with pytest.raises(cutlass_kernels.CutlassUnavailable, match='nvcc'):
        cutlass_kernels.nvcc_command()


def test_one_hopper_object_per_kernel_and_tile_config(tmp_path):
    root = pathlib.Path('/cutlass')
    commands = cutlass_kernels.compile_commands('nvcc', root, tmp_path)
    linear = len(cutlass_kernels.LINEAR_OPERATIONS) * len(cutlass_kernels.LINEAR_CONFIGS)
    assert len(commands) == linear + len(cutlass_kernels.ATTENTION_CONFIGS)
    for target, command in commands.items():
        assert command[command.index('-o') + 1] == target
        assert '-gencode=arch=compute_90a,code=sm_90a' in command  # wgmma needs sm_90a
        assert '-DNDEBUG' in command  # device asserts would serialize the wgmma pipeline
        assert f'-I{root / "include"}' in command and f'-I{root / "examples"}' in command
        source = pathlib.Path(command[command.index('-c') + 1])
        # only the attention's softmax takes approximate exponentials
        assert ('--use_fast_math' in command) == (source == cutlass_kernels.ATTENTION_SOURCE)
    defines = {tuple(flag for flag in command if flag.startswith('-DBLIP_') or flag == '-c' or
                     flag.endswith('.cu'))
               for command in commands.values()}
    assert len(defines) == len(commands)


def test_the_cache_key_follows_the_objects_sources_cutlass_and_compiler(monkeypatch, tmp_path):
    root = cutlass_checkout(tmp_path)
    versions = iter(['release 13.0', 'release 13.0', 'release 13.1'])

    class Finished:
        def __init__(self):
            self.stdout = next(versions)

    monkeypatch.setattr(cutlass_kernels.subprocess, 'run', lambda *args, **kwargs: Finished())
    first = cutlass_kernels.library_path('nvcc', root)
    assert cutlass_kernels.library_path('nvcc', root) == first
    assert cutlass_kernels.library_path('nvcc', root) != first  # another compiler
    monkeypatch.setattr(cutlass_kernels.subprocess, 'run',
                        lambda *args, **kwargs: type('F', (), {'stdout': 'release 13.0'})())
    (root / 'include' / 'cutlass' / 'version.h').write_text('#define CUTLASS_MAJOR 5\n')
    assert cutlass_kernels.library_path('nvcc', root) != first  # another CUTLASS
    (root / 'include' / 'cutlass' / 'version.h').write_text('#define CUTLASS_MAJOR 4\n')
    assert cutlass_kernels.library_path('nvcc', root) == first
    configs = cutlass_kernels.LINEAR_CONFIGS
    monkeypatch.setattr(cutlass_kernels, 'LINEAR_CONFIGS', configs[:-1])
    assert cutlass_kernels.library_path('nvcc', root) != first  # another set of objects
    monkeypatch.setattr(cutlass_kernels, 'LINEAR_CONFIGS', configs)
    attention = tmp_path / 'attention.cu'
    attention.write_text('// another attention kernel\n')
    monkeypatch.setattr(cutlass_kernels, 'ATTENTION_SOURCE', attention)
    assert cutlass_kernels.library_path('nvcc', root) != first  # another source


def test_operands_are_made_contiguous_and_16_byte_aligned():
    base = torch.arange(40, dtype=torch.bfloat16)
    shifted = base[1:33]  # 2 bytes past an aligned start
    assert shifted.data_ptr() % 16 != 0
    ready = cutlass_kernels.tma_ready(shifted)
    assert ready.data_ptr() % 16 == 0 and torch.equal(ready, shifted)
    aligned = base[8:40]
    assert cutlass_kernels.tma_ready(aligned).data_ptr() == aligned.data_ptr()  # no copy
    transposed = torch.randn(8, 16).t()
    assert cutlass_kernels.tma_ready(transposed).is_contiguous()


FAKE_NVCC = '''#!{python}
"""Stands in for nvcc: writes each -o target, or fails when asked to."""
import os, sys
args = sys.argv[1:]
if '--version' in args:
    print('fake nvcc, release 0.0')
    sys.exit(0)
if os.environ.get('FAKE_NVCC_FAIL') and '-c' in args and \\
        args[args.index('-c') + 1].endswith(os.environ['FAKE_NVCC_FAIL']):
    sys.exit('error: pretend compile failure')
with open(args[args.index('-o') + 1], 'w') as out:
    out.write('shared' if '-shared' in args else 'object')
'''


def fake_nvcc(tmp_path) -> str:
    """An executable stand-in for nvcc that writes its outputs."""
    path = tmp_path / 'nvcc'
    path.write_text(FAKE_NVCC.format(python=sys.executable))
    path.chmod(0o755)
    return str(path)


def test_build_compiles_every_object_and_links_them(tmp_path, monkeypatch):
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
    nvcc = fake_nvcc(tmp_path)
    target = cutlass_kernels.cache_root() / 'key' / 'libblip_cutlass.so'
    cutlass_kernels.build(nvcc, tmp_path, target)
    assert target.read_text() == 'shared'
    assert list(target.parent.iterdir()) == [target]  # the scratch objects are gone


def test_compiles_at_once_are_bounded_by_objects_cpus_and_memory(monkeypatch):
    monkeypatch.setattr(cutlass_kernels, 'usable_cpus', lambda: 16)
    monkeypatch.setattr(cutlass_kernels, 'available_memory_bytes', lambda: 64 << 30)
    assert cutlass_kernels.parallel_compiles(6) == 6
    monkeypatch.setattr(cutlass_kernels, 'usable_cpus', lambda: 2)
    assert cutlass_kernels.parallel_compiles(6) == 2
    monkeypatch.setattr(cutlass_kernels, 'usable_cpus', lambda: 16)
    monkeypatch.setattr(cutlass_kernels, 'available_memory_bytes', lambda: 10 << 30)
    assert cutlass_kernels.parallel_compiles(6) == 3
    monkeypatch.setattr(cutlass_kernels, 'available_memory_bytes', lambda: 1 << 30)
    assert cutlass_kernels.parallel_compiles(6) == 1
    monkeypatch.setattr(cutlass_kernels, 'available_memory_bytes', lambda: None)
    assert cutlass_kernels.parallel_compiles(6) == 6


def test_available_memory_is_read_from_meminfo(tmp_path):
    meminfo = tmp_path / 'meminfo'
    meminfo.write_text('MemTotal:       24000000 kB\nMemFree:  100 kB\n'
                       'MemAvailable:   12345678 kB\n')
    assert cutlass_kernels.available_memory_bytes(str(meminfo)) == 12345678 * 1024
    meminfo.write_text('MemTotal:       24000000 kB\n')  # an old kernel: no estimate
    assert cutlass_kernels.available_memory_bytes(str(meminfo)) is None
    assert cutlass_kernels.available_memory_bytes(str(tmp_path / 'absent')) is None
    assert cutlass_kernels.usable_cpus() >= 1


@pytest.mark.parametrize('failing', ['linear_epilogue.cu', 'attention.cu'])
def test_a_failed_build_names_the_source_and_leaves_no_library(tmp_path, monkeypatch, failing):
    monkeypatch.setenv('FAKE_NVCC_FAIL', failing)
    target = tmp_path / 'cache' / 'libblip_cutlass.so'
    with pytest.raises(cutlass_kernels.CutlassUnavailable,
                       match=f'compiling .*{failing} failed:\nerror: pretend compile failure'):
        cutlass_kernels.build(fake_nvcc(tmp_path), tmp_path, target)
    assert not target.exists()


class FakeTimer:
    """Stands in for ``torch.cuda.Event``: the time between two records is the time the
    launches in between were given (``durations``)."""

    clock = 0.0

    def __init__(self, enable_timing=True):
        self.at = None

    def record(self):
        self.at = FakeTimer.clock

    def synchronize(self):
        pass

    def elapsed_time(self, end):
        return end.at - self.at


def test_the_tuner_keeps_the_fastest_configuration_cutlass_accepts(monkeypatch):
    durations = {0: 3.0, 1: 1.0, 2: 2.0}
    launched = []

    def launch(config):
        launched.append(config)
        if config == 1:
            raise RuntimeError('status 7')  # refused: left out although "fastest"
        FakeTimer.clock += durations[config]

    monkeypatch.setattr(torch.cuda, 'Event', FakeTimer)
    monkeypatch.setattr(torch.cuda, 'is_current_stream_capturing', lambda: False)
    chosen = {}
    assert cutlass_kernels.fastest_config(chosen, 'shape', tuple(durations), launch) == 2
    assert cutlass_kernels.fastest_config(chosen, 'shape', tuple(durations), launch) == 2
    assert launched.count(0) == launched.count(2) == 1 + cutlass_kernels.TUNING_REPEATS  # once
    assert chosen == {'shape': 2}

    def refuse(config):
        raise RuntimeError('status 7')

    with pytest.raises(RuntimeError, match='no tile configuration runs: status 7'):
        cutlass_kernels.fastest_config(chosen, 'another shape', (0, 1), refuse)


def test_a_lone_configuration_is_not_timed(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_current_stream_capturing', lambda: False)
    chosen = {}
    assert cutlass_kernels.fastest_config(
        chosen, 'shape', (5,), lambda config: pytest.fail('launched')) == 5
    assert chosen == {}


def test_the_tuner_times_nothing_while_a_graph_is_captured(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_current_stream_capturing', lambda: True)
    chosen = {}
    assert cutlass_kernels.fastest_config(
        chosen, 'shape', (3, 4), lambda config: pytest.fail('launched')) == 3
    assert chosen == {}  # chosen again once not capturing
