"""The CUTLASS fused linear layers' CPU-side contract: when they serve, how they are built,
what they say when they cannot be, and their shapes under torch.compile's fake tensors.
(The kernels' values are checked on the GPU by ``benchmarks.bench_fused_linear``.)"""
import pathlib
import sys

import pytest
import torch
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensorMode

from backbones import fused_linear


def test_cpu_tensors_are_not_served():
    x, weight = torch.randn(3, 16).bfloat16(), torch.randn(24, 16).bfloat16()
    assert not fused_linear.serves(x, weight)


def test_missing_cutlass_is_named_with_the_fix(monkeypatch):
    monkeypatch.delenv(fused_linear.CUTLASS_ENV, raising=False)
    with pytest.raises(fused_linear.FusedLinearUnavailable, match=fused_linear.CUTLASS_ENV):
        fused_linear.cutlass_include()


def test_a_directory_without_cutlass_headers_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv(fused_linear.CUTLASS_ENV, str(tmp_path))
    with pytest.raises(fused_linear.FusedLinearUnavailable, match='version.h'):
        fused_linear.cutlass_include()


def test_missing_nvcc_is_named(monkeypatch):
    monkeypatch.delenv('CUDACXX', raising=False)
    monkeypatch.setenv('PATH', '')
    with pytest.raises(fused_linear.FusedLinearUnavailable, match='nvcc'):
        fused_linear.nvcc_command()


def test_one_hopper_object_per_operation_and_tile_config(tmp_path):
    commands = fused_linear.compile_commands('nvcc', pathlib.Path('/cutlass/include'), tmp_path)
    assert len(commands) == len(fused_linear.OPERATIONS) * len(fused_linear.TILE_CONFIGS)
    for target, command in commands.items():
        assert command[command.index('-o') + 1] == target
        assert '-gencode=arch=compute_90a,code=sm_90a' in command  # wgmma needs sm_90a
        assert '-DNDEBUG' in command  # device asserts would serialize the wgmma pipeline
    defines = {tuple(flag for flag in command if flag.startswith('-DBLIP_'))
               for command in commands.values()}
    assert len(defines) == len(commands)


def test_the_cache_key_follows_the_source_cutlass_and_compiler(monkeypatch, tmp_path):
    include = tmp_path / 'include'
    (include / 'cutlass').mkdir(parents=True)
    (include / 'cutlass' / 'version.h').write_text('#define CUTLASS_MAJOR 4\n')
    versions = iter(['release 13.0', 'release 13.0', 'release 13.1'])

    class Finished:
        def __init__(self):
            self.stdout = next(versions)

    monkeypatch.setattr(fused_linear.subprocess, 'run', lambda *args, **kwargs: Finished())
    first = fused_linear.library_path('nvcc', include)
    assert fused_linear.library_path('nvcc', include) == first
    assert fused_linear.library_path('nvcc', include) != first  # another compiler
    monkeypatch.setattr(fused_linear.subprocess, 'run',
                        lambda *args, **kwargs: type('F', (), {'stdout': 'release 13.0'})())
    (include / 'cutlass' / 'version.h').write_text('#define CUTLASS_MAJOR 5\n')
    assert fused_linear.library_path('nvcc', include) != first  # another CUTLASS


def test_fake_shapes_match_the_products():
    with FakeTensorMode():
        x = torch.empty(2, 5, 16, dtype=torch.bfloat16)
        weight, bias = torch.empty(24, 16, dtype=torch.bfloat16), torch.empty(24)
        residual = torch.empty(2, 5, 24, dtype=torch.bfloat16)
        assert fused_linear.linear_gelu(x, weight, bias).shape == (2, 5, 24)
        assert fused_linear.linear_residual(x, weight, bias, residual).shape == (2, 5, 24)


def tiny_vits():
    """A plain and a fused-epilogue tiny BlipViT with the same weights, in eval mode."""
    from backbones.vit import BlipViT
    torch.manual_seed(0)
    plain = BlipViT('vit_tiny_patch8', image_size=32).eval()
    fused = BlipViT('vit_tiny_patch8', image_size=32, fused_epilogues=True).eval()
    fused.load_state_dict(plain.state_dict())
    return plain, fused


def test_fused_vit_keeps_names_and_falls_back_off_hopper():
    plain, fused = tiny_vits()
    assert list(plain.state_dict()) == list(fused.state_dict())
    images = torch.randn(2, 3, 32, 32)
    assert torch.equal(plain(images), fused(images))


def test_fused_block_wires_the_products_like_timm(monkeypatch):
    """With the fused ops stood in for by their definitions, the fused blocks compute timm's
    blocks bit for bit: right weights, the attention's projection and the second MLP
    product with the residual, GELU after the first MLP product."""
    plain, fused = tiny_vits()
    monkeypatch.setattr(fused_linear, 'serves', lambda x, weight: True)
    calls = []

    def gelu_product(x, weight, bias):
        calls.append('gelu')
        return torch.nn.functional.gelu(torch.nn.functional.linear(x, weight, bias))

    def residual_product(x, weight, bias, residual):
        calls.append('residual')
        return residual + torch.nn.functional.linear(x, weight, bias)

    monkeypatch.setattr(fused_linear, 'linear_gelu', gelu_product)
    monkeypatch.setattr(fused_linear, 'linear_residual', residual_product)
    images = torch.randn(2, 3, 32, 32)
    assert torch.equal(plain(images), fused(images))
    assert calls == ['residual', 'gelu', 'residual'] * len(fused.blocks)
    calls.clear()
    fused.train()
    fused(images)
    assert calls == []  # training keeps timm's forward (the kernels have no backward)
    fused.eval().set_fused_epilogues(False)
    fused(images)
    assert calls == []  # switched off: timm's forward


def test_only_the_plain_mlp_and_attention_are_fused():
    _, fused = tiny_vits()
    block = fused.blocks[0]
    assert block.plain_mlp() and block.plain_attention()
    block.mlp.act = torch.nn.GELU(approximate='tanh')
    assert not block.plain_mlp()
    block.attn.q_norm = torch.nn.LayerNorm(block.attn.head_dim)
    assert not block.plain_attention()


def test_benchmark_refuses_without_a_hopper_gpu(monkeypatch):
    from benchmarks import bench_fused_linear
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(SystemExit, match='Hopper'):
        bench_fused_linear.main([])


def test_operands_are_made_contiguous_and_16_byte_aligned():
    base = torch.arange(40, dtype=torch.bfloat16)
    shifted = base[1:33]  # 2 bytes past an aligned start
    assert shifted.data_ptr() % 16 != 0
    ready = fused_linear._tma_ready(shifted)
    assert ready.data_ptr() % 16 == 0 and torch.equal(ready, shifted)
    aligned = base[8:40]
    assert fused_linear._tma_ready(aligned).data_ptr() == aligned.data_ptr()  # no copy
    transposed = torch.randn(8, 16).t()
    assert fused_linear._tma_ready(transposed).is_contiguous()


def test_a_residual_of_another_shape_is_refused_with_both_shapes():
    x, weight, bias = torch.randn(2, 5, 16), torch.randn(24, 16), torch.randn(24)
    with pytest.raises(ValueError, match=r'\(2, 5, 8\).*\(2, 5, 24\)'):
        fused_linear.linear_residual(x, weight, bias, torch.randn(2, 5, 8))


FAKE_NVCC = '''#!{python}
"""Stands in for nvcc: writes each -o target, or fails when asked to."""
import os, sys
args = sys.argv[1:]
if '--version' in args:
    print('fake nvcc, release 0.0')
    sys.exit(0)
if os.environ.get('FAKE_NVCC_FAIL') and '-c' in args:
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
    target = fused_linear.cache_root() / 'key' / 'liblinear_epilogue.so'
    fused_linear.build(nvcc, tmp_path, target)
    assert target.read_text() == 'shared'
    assert list(target.parent.iterdir()) == [target]  # the scratch objects are gone


def test_compiles_at_once_are_bounded_by_objects_cpus_and_memory(monkeypatch):
    monkeypatch.setattr(fused_linear, 'usable_cpus', lambda: 16)
    monkeypatch.setattr(fused_linear, 'available_memory_bytes', lambda: 64 << 30)
    assert fused_linear.parallel_compiles(6) == 6
    monkeypatch.setattr(fused_linear, 'usable_cpus', lambda: 2)
    assert fused_linear.parallel_compiles(6) == 2
    monkeypatch.setattr(fused_linear, 'usable_cpus', lambda: 16)
    monkeypatch.setattr(fused_linear, 'available_memory_bytes', lambda: 10 << 30)
    assert fused_linear.parallel_compiles(6) == 3
    monkeypatch.setattr(fused_linear, 'available_memory_bytes', lambda: 1 << 30)
    assert fused_linear.parallel_compiles(6) == 1
    monkeypatch.setattr(fused_linear, 'available_memory_bytes', lambda: None)
    assert fused_linear.parallel_compiles(6) == 6


def test_available_memory_is_read_from_meminfo(tmp_path):
    meminfo = tmp_path / 'meminfo'
    meminfo.write_text('MemTotal:       24000000 kB\nMemFree:  100 kB\n'
                       'MemAvailable:   12345678 kB\n')
    assert fused_linear.available_memory_bytes(str(meminfo)) == 12345678 * 1024
    meminfo.write_text('MemTotal:       24000000 kB\n')  # an old kernel: no estimate
    assert fused_linear.available_memory_bytes(str(meminfo)) is None
    assert fused_linear.available_memory_bytes(str(tmp_path / 'absent')) is None
    assert fused_linear.usable_cpus() >= 1


def test_a_failed_build_says_why_and_leaves_no_library(tmp_path, monkeypatch):
    monkeypatch.setenv('FAKE_NVCC_FAIL', '1')
    target = tmp_path / 'cache' / 'liblinear_epilogue.so'
    with pytest.raises(fused_linear.FusedLinearUnavailable, match='pretend compile failure'):
        fused_linear.build(fake_nvcc(tmp_path), tmp_path, target)
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

    def launch(op, config, *operands):
        launched.append(config)
        if config == 1:
            raise RuntimeError('status 7')  # refused: left out although "fastest"
        FakeTimer.clock += durations[config]

    monkeypatch.setattr(fused_linear, 'TILE_CONFIGS', tuple(durations))
    monkeypatch.setattr(fused_linear, 'launch', launch)
    monkeypatch.setattr(fused_linear, '_chosen_config', {})
    monkeypatch.setattr(torch.cuda, 'Event', FakeTimer)
    monkeypatch.setattr(torch.cuda, 'is_current_stream_capturing', lambda: False)
    out, weight = torch.empty(10, 8), torch.empty(8, 4)
    assert fused_linear._tile_config('gelu', None, weight, None, None, out) == 2
    assert fused_linear._tile_config('gelu', None, weight, None, None, out) == 2
    assert launched.count(0) == launched.count(2) == 1 + fused_linear.TUNING_REPEATS  # once
    durations.clear()  # every configuration refused now
    monkeypatch.setattr(fused_linear, 'launch', lambda *args: (_ for _ in ()).throw(
        RuntimeError('status 7')))
    with pytest.raises(RuntimeError, match='no tile configuration runs: status 7'):
        fused_linear._tile_config('gelu', None, torch.empty(16, 4), None, None, out)


def test_the_tuner_times_nothing_while_a_graph_is_captured(monkeypatch):
    monkeypatch.setattr(fused_linear, 'launch', lambda *args: pytest.fail('launched'))
    monkeypatch.setattr(fused_linear, '_chosen_config', {})
    monkeypatch.setattr(torch.cuda, 'is_current_stream_capturing', lambda: True)
    out, weight = torch.empty(10, 8), torch.empty(8, 4)
    assert fused_linear._tile_config('gelu', None, weight, None, None, out) == \
        fused_linear.TILE_CONFIGS[0]
    assert fused_linear._chosen_config == {}  # chosen again once not capturing


def test_the_gelu_table_is_not_first_set_inside_a_graph_capture(monkeypatch):
    monkeypatch.setattr(fused_linear, '_gelu_table_loaded', set())
    monkeypatch.setattr(fused_linear, 'library', lambda: pytest.fail('table copied'))
    monkeypatch.setattr(torch.cuda, 'is_current_stream_capturing', lambda: True)
    with pytest.raises(RuntimeError, match='outside the capture'):
        fused_linear._load_gelu_table(torch.device('cuda', 0))
    assert fused_linear._gelu_table_loaded == set()


def product_then(activation):
    """A stand-in for ``fused_linear.launch`` on the CPU: the product in float32, then
    ``activation`` of that float32 sum, rounded to bf16 into ``out``."""
    def launch(op, config, x, weight, bias, residual, out):
        out.copy_(activation(x.float() @ weight.float().t() + bias.float()).bfloat16())
    return launch


def test_the_gelu_check_passes_the_unfused_bf16_gelu_and_counts_others(monkeypatch):
    from benchmarks import bench_fused_linear
    sums = bench_fused_linear.every_bf16_and_random_sums(20_000, device='cpu')
    assert sums.numel() == 65283 + 20_000  # every bf16 value but 253 of the 254 NaN patterns
    assert sums.isinf().sum() == 2 and sums.isnan().sum() == 1
    gelu = torch.nn.functional.gelu
    monkeypatch.setattr(fused_linear, 'launch', product_then(lambda s: gelu(s.bfloat16())))
    assert bench_fused_linear.gelu_mismatches(sums) == []
    for not_unfused in (gelu, lambda s: gelu(s.bfloat16(), approximate='tanh')):
        monkeypatch.setattr(fused_linear, 'launch', product_then(not_unfused))
        failures = bench_fused_linear.gelu_mismatches(sums)
        assert len(failures) == len(fused_linear.TILE_CONFIGS)
        assert all('of 85283 differ' in failure for failure in failures)


def gelu_as_the_kernel_reads_it(values: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """A mirror of ``gelu_of_bf16_bits`` in linear_epilogue.cu on bf16 ``values``."""
    magnitudes = fused_linear.TABLE_MAGNITUDES
    bits = values.view(torch.int16).to(torch.int32) & 0xFFFF
    offset = (bits & 0x7FFF) - (fused_linear.TABLE_LOW_EXPONENT << 7)
    clamped = offset.clamp(-1, magnitudes)
    entry = table[clamped + 1 + (bits >> 15) * (magnitudes + 2)].view(torch.bfloat16).float()
    inside = (offset >= 0) & (offset < magnitudes)
    return torch.where(inside, entry, values.float() * entry).bfloat16()


def test_the_gelu_table_read_as_the_kernel_reads_it_gives_the_gelu_of_every_bf16_value():
    """Every bf16 bit pattern, the infinities and NaNs included, through the kernel's lookup
    (mirrored): in [2^-10, 8) in magnitude, ``F.gelu`` of the value (the table's source, on the
    CPU here); outside, CUDA's ``F.gelu`` formula ``x * 0.5 * (1 + erf(x / sqrt 2))`` in float
    rounded to bf16 (the CPU's ``F.gelu`` of a bf16 tensor flushes subnormal results to zero and
    overflows from 2^127 on, CUDA's does neither). Bit patterns compared; any NaN for a NaN."""
    from benchmarks import bench_fused_linear
    table = fused_linear.gelu_table(torch.device('cpu'))
    assert table.dtype == torch.int16 and table.numel() % 8 == 0
    values = torch.arange(-2 ** 15, 2 ** 15, dtype=torch.int32).to(torch.int16).view(
        torch.bfloat16)
    x = values.float()
    in_range = (x.abs() >= 2 ** -10) & (x.abs() < 8)
    expected = torch.where(in_range, F.gelu(values).float(),
                           x * 0.5 * (1 + torch.erf(x * 0.5 ** 0.5))).bfloat16()

    def mismatches(table: torch.Tensor) -> torch.Tensor:
        looked_up = gelu_as_the_kernel_reads_it(values, table)
        return values[~bench_fused_linear.same_bits(looked_up, expected)]

    assert mismatches(table).numel() == 0, mismatches(table)[:8]
    assert mismatches(torch.cat([table[1:], table[:1]])).numel() > 0  # one entry off
    above_8 = table.clone()
    above_8[fused_linear.TABLE_MAGNITUDES + 1] = 0  # the positive multiplier for x >= 8
    assert mismatches(above_8).numel() > 0
