"""CUTLASS's attention on the packed QKV product, CPU side: when it serves, what the block
computes with it (stood in for by its definition), how it is launched, and its shape under
torch.compile's fake tensors. (Its values are checked on the GPU by
``benchmarks.bench_fused_attention``.)"""
import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from backbones import cutlass_kernels, fused_attention, fused_linear
from backbones.vit import BlipViT


def test_only_the_kernels_layout_on_a_gpu_is_served():
    qkv = torch.zeros(2, 577, 3, 12, 64, dtype=torch.bfloat16)
    assert fused_attention.layout_fits(qkv)
    assert not fused_attention.serves(qkv)  # on the CPU
    assert fused_attention.layout_fits(torch.zeros(2, 5, 3, 4, 64, dtype=torch.bfloat16))
    others = {'head size 32': qkv[..., :32].contiguous(), 'float32': qkv.float(),
              'no q, k, v axis': qkv.reshape(2, 577, 36, 64),
              'strided': qkv.transpose(0, 1)}
    for name, tensor in others.items():
        assert not fused_attention.layout_fits(tensor), name


def test_the_packed_layout_gives_timms_attention():
    """``sdpa_of_packed`` of the qkv linear's output, reshaped, equals timm's attention
    before its output projection, bit for bit."""
    torch.manual_seed(0)
    block = BlipViT('vit_tiny_patch8', image_size=32).eval().blocks[0]
    attn = block.attn
    x = torch.randn(2, 17, attn.qkv.in_features)
    captured = {}
    attn.proj.register_forward_hook(lambda module, inputs, out: captured.update(x=inputs[0]))
    attn(x)
    qkv = attn.qkv(x).reshape(2, 17, 3, attn.num_heads, attn.head_dim)
    assert torch.equal(fused_attention.sdpa_of_packed(qkv), captured['x'])


def tiny_fused_vits():
    """A plain tiny BlipViT and one with fused epilogues and attention, same weights."""
    torch.manual_seed(0)
    plain = BlipViT('vit_tiny_patch8', image_size=32).eval()
    fused = BlipViT('vit_tiny_patch8', image_size=32, fused_epilogues=True,
                    fused_attention=True).eval()
    fused.load_state_dict(plain.state_dict())
    return plain, fused


def test_the_fused_block_runs_the_attention_kernel_on_the_qkv_product(monkeypatch):
    """With every kernel stood in for by its definition, the fused blocks compute timm's
    bit for bit, and the attention kernel gets the qkv product as [B, N, 3, H, D]."""
    plain, fused = tiny_fused_vits()
    monkeypatch.setattr(fused_linear, 'serves', lambda x, weight: True)
    monkeypatch.setattr(fused_linear, 'linear_gelu', lambda x, weight, bias: torch.nn.functional
                        .gelu(torch.nn.functional.linear(x, weight, bias)))
    monkeypatch.setattr(fused_linear, 'linear_residual', lambda x, weight, bias, residual:
                        residual + torch.nn.functional.linear(x, weight, bias))
    monkeypatch.setattr(fused_attention, 'serves', lambda qkv: True)
    shapes = []

    def kernel(qkv):
        shapes.append(tuple(qkv.shape))
        return fused_attention.sdpa_of_packed(qkv)

    monkeypatch.setattr(fused_attention, 'packed_attention', kernel)
    images = torch.randn(2, 3, 32, 32)
    assert torch.equal(plain(images), fused(images))
    block = fused.blocks[0]
    tokens = (32 // 8) ** 2 + 1
    assert shapes == [(2, tokens, 3, block.attn.num_heads, block.attn.head_dim)] * len(
        fused.blocks)
    shapes.clear()
    fused.set_fused_epilogues(True)  # attention off: SDPA
    fused(images)
    assert shapes == []


def test_the_attention_kernel_needs_the_fused_blocks():
    with pytest.raises(ValueError, match='fused_epilogues=True'):
        BlipViT('vit_tiny_patch8', image_size=32, fused_attention=True)


def test_the_launch_passes_the_layout_and_names_the_shape_on_failure(monkeypatch):
    calls = []

    class Library:
        def blip_attention_run_0(self, *args):
            calls.append(args)
            return calls[-1][3] == 3  # fails for 3 images

    monkeypatch.setattr(cutlass_kernels, 'library', Library)
    monkeypatch.setattr(torch.cuda, 'get_device_properties',
                        lambda device: type('P', (), {'multi_processor_count': 132}))
    monkeypatch.setattr(torch.cuda, 'current_stream',
                        lambda device: type('S', (), {'cuda_stream': 77}))
    qkv = torch.zeros(2, 577, 3, 12, 64, dtype=torch.bfloat16)
    out, lse = torch.empty(2, 577, 768, dtype=torch.bfloat16), torch.empty(2 * 12 * 577)
    fused_attention.launch(0, qkv, out, lse)
    assert calls == [(qkv.data_ptr(), out.data_ptr(), lse.data_ptr(), 2, 577, 12, 64, 132, 0,
                      77)]
    with pytest.raises(RuntimeError, match=r'tile config 0.*\(3, 577, 3, 12, 64\)'):
        fused_attention.launch(0, torch.zeros(3, 577, 3, 12, 64), out, lse)


def test_fake_shape_matches_the_output_projection_input():
    with FakeTensorMode():
        qkv = torch.empty(2, 577, 3, 12, 64, dtype=torch.bfloat16)
        assert fused_attention.packed_attention(qkv).shape == (2, 577, 768)


def test_benchmark_refuses_without_a_hopper_gpu(monkeypatch):
    from benchmarks import bench_fused_attention
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(SystemExit, match='bench_fused_attention needs a Hopper GPU'):
        bench_fused_attention.main([])


def test_the_layout_check_traces_in_one_graph():
    """torch.compile reads no pointer in the check (fake tensors have none): fullgraph works."""
    def halve_if_served(qkv):
        if fused_attention.layout_fits(qkv) and not (torch.is_grad_enabled() and
                                                     qkv.requires_grad):
            return qkv / 2
        return qkv

    qkv = torch.ones(2, 5, 3, 4, 64, dtype=torch.bfloat16)
    compiled = torch.compile(halve_if_served, fullgraph=True, backend='eager')
    assert torch.equal(compiled(qkv), qkv / 2)
    assert torch.equal(compiled(qkv.float()), qkv.float())
