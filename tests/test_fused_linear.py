"""The CUTLASS fused linear layers' CPU-side contract: when they serve, how the ViT's blocks
wire them, how they are tuned, their GELU table, and their shapes under torch.compile's fake
tensors. (The kernels' values are checked on the GPU by ``benchmarks.bench_fused_linear``;
their build by ``tests/test_cutlass_kernels.py``.)"""

import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensorMode

from backbones import fused_linear


def test_cpu_tensors_are_not_served():
    x, weight = torch.randn(3, 16).bfloat16(), torch.randn(24, 16).bfloat16()
    assert not fused_linear.serves(x, weight)


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


def test_a_residual_of_another_shape_is_refused_with_both_shapes():
    x, weight, bias = torch.randn(2, 5, 16), torch.randn(24, 16), torch.randn(24)
    with pytest.raises(ValueError, match=r'\(2, 5, 8\).*\(2, 5, 24\)'):
        fused_linear.linear_residual(x, weight, bias, torch.randn(2, 5, 8))


def test_each_operation_and_shape_is_tuned_over_the_linear_configurations(monkeypatch):
    asked, launched = [], []

    def fastest(chosen, key, configs, launch):
        asked.append((chosen is fused_linear._chosen_config, key, configs))
        launch(configs[-1])
        return configs[-1]

    monkeypatch.setattr(fused_linear.cutlass_kernels, 'fastest_config', fastest)
    monkeypatch.setattr(fused_linear, 'launch', lambda *args: launched.append(args[:2]))
    out, weight = torch.empty(10, 24), torch.empty(24, 16)
    assert fused_linear._tile_config('residual', None, weight, None, None, out) == \
        fused_linear.TILE_CONFIGS[-1]
    assert asked == [(True, ('residual', 10, 24, 16), fused_linear.TILE_CONFIGS)]
    assert launched == [('residual', fused_linear.TILE_CONFIGS[-1])]


def test_the_gelu_table_is_not_first_set_inside_a_graph_capture(monkeypatch):
    monkeypatch.setattr(fused_linear, '_gelu_table_loaded', set())
    monkeypatch.setattr(fused_linear.cutlass_kernels, 'library',
                        lambda: pytest.fail('table copied'))
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
    """A mirror of ``gelu_of_bf16_pair`` in linear_epilogue.cu on bf16 ``values``: the row of
    each value's clamped magnitude, then ``bf16(x * scale + addend)`` rounded once."""
    bits = fused_linear.bf16_bits(values)
    row = ((bits & 0x7FFF) - (fused_linear.TABLE_LOW_EXPONENT << 7)).clamp(
        -1, fused_linear.TABLE_MAGNITUDES) + 1
    words = table[row + (bits >> 15) * fused_linear.TABLE_SIGN_STRIDE]
    scale, addend = (half.to(torch.int16).view(torch.bfloat16).float()
                     for half in (words & 0xFFFF, (words >> 16) & 0xFFFF))
    return (values.float() * scale + addend).bfloat16()  # x * scale is exact in float


def test_the_gelu_table_read_as_the_kernel_reads_it_gives_the_gelu_of_every_bf16_value():
    """Every bf16 bit pattern, the infinities and NaNs included, through the kernel's lookup
    (mirrored): in [2^-10, 8) in magnitude, ``F.gelu`` of the value (the table's source, on the
    CPU here); outside, CUDA's ``F.gelu`` formula ``x * 0.5 * (1 + erf(x / sqrt 2))`` in float
    rounded to bf16 (the CPU's ``F.gelu`` of a bf16 tensor flushes subnormal results to zero and
    overflows from 2^127 on, CUDA's does neither). Bit patterns compared; any NaN for a NaN."""
    from benchmarks import bench_fused_linear
    table = fused_linear.gelu_table(torch.device('cpu'))
    assert table.dtype == torch.int32 and table.numel() == fused_linear.TABLE_ROWS == 3840
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
    above_8[fused_linear.TABLE_MAGNITUDES + 1] = 0  # the positive scale for x >= 8
    assert mismatches(above_8).numel() > 0
    signs_swapped = torch.roll(table, fused_linear.TABLE_SIGN_STRIDE)
    assert mismatches(signs_swapped).numel() > 0


def test_the_gelu_table_layout_is_the_kernels():
    """The table's constants in Python are linear_epilogue.cu's (a mismatch would read rows
    from the wrong place, or copy past the end of the Python table)."""
    source = (Path(fused_linear.__file__).parent / 'cuda' / 'linear_epilogue.cu').read_text()

    def constant(name: str) -> int:
        return int(re.search(rf'constexpr int {name} = (\d+);', source).group(1))

    assert constant('kTableLowExponent') == fused_linear.TABLE_LOW_EXPONENT
    assert constant('kTableExponents') == fused_linear.TABLE_EXPONENTS
    assert constant('kSignStride') == fused_linear.TABLE_SIGN_STRIDE
