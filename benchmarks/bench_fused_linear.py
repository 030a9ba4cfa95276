"""Fused linear epilogues (CUTLASS, Hopper) against cuBLAS plus the element-wise op, and the ViT.

Three parts, all in one process on one GPU, the anchors beside each number:

* values: each fused product (GELU; residual add) and tile configuration against an fp32
  reference from the same bf16 inputs, beside the unfused bf16 path's error; the output is
  poisoned with NaN first, so an unwritten element fails. The GELU epilogue must also equal
  ``F.gelu`` of the same float32 sum rounded to bf16 (what the unfused bf16 path computes),
  bit for bit (every bf16 value, the infinities and NaN, and a million random sums). After a
  failure the products are still timed but the ViT is not, and the exit code is 1;
* products at the ViT's shapes: cuBLAS's ``F.linear`` alone, the unfused pair eager and under
  ``torch.compile``, and each fused configuration (median milliseconds, Triton's do_bench);
* the ViT (bf16 weights, inference): ``BlipViT`` against ``BlipViT(fused_epilogues=True)``
  with the same weights, eager and compiled, rounds alternating, in images/s, with each
  one's [CLS] cosine to the fp32 model.

Needs a Hopper GPU, nvcc and ``$BLIP_CUTLASS_DIR`` (:mod:`backbones.fused_linear`)::

    BLIP_CUTLASS_DIR=~/src/cutlass python -m benchmarks.bench_fused_linear
"""
import argparse
import sys
import time
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F

from backbones import cutlass_kernels, fused_linear
from backbones.vit import VIT_SHAPES, BlipViT


def median_ms(run: Callable[[], object]) -> float:
    """Median milliseconds of ``run`` (Triton's ``do_bench``: CUDA events, L2 flushed)."""
    import triton.testing
    return triton.testing.do_bench(run, warmup=50, rep=300, return_mode='median')


def operands(op: str, rows: int, outputs: int, inputs: int):
    """Random bf16 ``x``, ``weight`` (scaled like a trained layer's), ``bias``, ``residual``."""
    x = torch.randn(rows, inputs, device='cuda').bfloat16()
    weight = (torch.randn(outputs, inputs, device='cuda') / inputs ** 0.5).bfloat16()
    bias = torch.randn(outputs, device='cuda').bfloat16()
    residual = torch.randn(rows, outputs, device='cuda').bfloat16() if op == 'residual' else None
    return x, weight, bias, residual


def unfused(op: str, x, weight, bias, residual):
    """The path a fused product replaces (in the inputs' dtype)."""
    product = F.linear(x, weight, bias)
    return F.gelu(product) if op == 'gelu' else residual + product


def value_errors(op: str, rows: int, outputs: int, inputs: int) -> List[str]:
    """Prints each configuration's error against fp32; returns the failures."""
    x, weight, bias, residual = operands(op, rows, outputs, inputs)
    exact = unfused(op, *(t if t is None else t.float() for t in (x, weight, bias, residual)))
    plain_error = (unfused(op, x, weight, bias, residual).float() - exact).norm() / exact.norm()
    failures = []
    for config in fused_linear.TILE_CONFIGS:
        out = torch.full((rows, outputs), float('nan'), device='cuda', dtype=torch.bfloat16)
        try:
            fused_linear.launch(op, config, x, weight, bias, residual, out)
        except RuntimeError as refusal:
            print(f'  {op:8s} {rows}x{outputs}x{inputs} config {config}: FAIL, {refusal}')
            failures.append(f'{op} {rows}x{outputs}x{inputs} config {config} refused')
            continue
        error = (out.float() - exact).norm() / exact.norm()
        unwritten = int(out.isnan().sum())
        ok = unwritten == 0 and error <= 2 * plain_error
        print(f'  {op:8s} {rows}x{outputs}x{inputs} config {config}: relative error '
              f'{float(error):.3e} (unfused bf16 {float(plain_error):.3e}), unwritten '
              f'{unwritten}  {"ok" if ok else "FAIL"}')
        if not ok:
            failures.append(f'{op} {rows}x{outputs}x{inputs} config {config}')
    return failures


def gelu_mismatches(sums: torch.Tensor) -> List[str]:
    """Runs each configuration's GELU epilogue on float32 sums made exact by the product
    (``x = [hi, lo, 0, ...]``, weight rows ``[1, 1, 0, ...]``, zero bias) and counts outputs
    that differ from ``F.gelu`` of the sum rounded to bf16 (bit patterns; NaN equals NaN);
    returns the failures."""
    hi = sums.bfloat16()
    lo = torch.where(torch.isfinite(sums), sums - hi.float(), 0).bfloat16()
    x = torch.zeros(sums.numel(), fused_linear.ALIGNMENT, device=sums.device,
                    dtype=torch.bfloat16)
    x[:, 0], x[:, 1] = hi, lo
    weight = torch.zeros(fused_linear.ALIGNMENT, fused_linear.ALIGNMENT, device=sums.device,
                         dtype=torch.bfloat16)
    weight[:, :2] = 1
    bias = torch.zeros(fused_linear.ALIGNMENT, device=sums.device, dtype=torch.bfloat16)
    expected = F.gelu((hi.float() + lo.float()).bfloat16())
    failures = []
    for config in fused_linear.TILE_CONFIGS:
        out = torch.full_like(x, float('nan'))
        fused_linear.launch('gelu', config, x, weight, bias, None, out)
        differ = int((~same_bits(out[:, 0], expected)).sum())
        print(f'  gelu epilogue config {config} against F.gelu of the sum rounded to bf16 on '
              f'{sums.numel()} sums: {differ} differ  {"ok" if differ == 0 else "FAIL"}')
        if differ:
            failures.append(f'gelu epilogue config {config}: {differ} of {sums.numel()} differ')
    return failures


def same_bits(actual: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
    """Where two bf16 tensors hold the same bit pattern, or both a NaN (of any pattern)."""
    return (actual.view(torch.int16) == expected.view(torch.int16)) | (
        actual.isnan() & expected.isnan())


def every_bf16_and_random_sums(count: int, device: str = 'cuda') -> torch.Tensor:
    """Every bf16 value (the infinities and one NaN among them), then ``count`` float32 sums
    drawn from N(0, 3^2)."""
    patterns = torch.arange(-2 ** 15, 2 ** 15, device=device, dtype=torch.int32)
    every = patterns.to(torch.int16).view(torch.bfloat16).float()
    generator = torch.Generator(device).manual_seed(0)
    drawn = 3 * torch.randn(count, device=device, generator=generator)
    return torch.cat([every[~every.isnan()], every.new_tensor([float('nan')]), drawn])


def product_times(op: str, rows: int, outputs: int, inputs: int) -> None:
    """Prints the product's times: cuBLAS alone, unfused eager and compiled, each fused config."""
    x, weight, bias, residual = operands(op, rows, outputs, inputs)
    compiled = torch.compile(lambda: unfused(op, x, weight, bias, residual))
    times = {'cuBLAS product alone': median_ms(lambda: F.linear(x, weight, bias)),
             'unfused eager': median_ms(lambda: unfused(op, x, weight, bias, residual)),
             'unfused compiled': median_ms(compiled)}
    out = torch.empty(rows, outputs, device='cuda', dtype=torch.bfloat16)
    for config in fused_linear.TILE_CONFIGS:
        try:
            times[f'fused config {config}'] = median_ms(
                lambda: fused_linear.launch(op, config, x, weight, bias, residual, out))
        except RuntimeError:
            continue  # reported with the values
    fused = [ms for name, ms in times.items() if name.startswith('fused')]
    ratio = f'; unfused compiled / best fused {times["unfused compiled"] / min(fused):.2f}' \
        if fused else ''
    print(f'  {op:8s} {rows}x{outputs}x{inputs} ms: ' +
          ', '.join(f'{name} {ms:.4f}' for name, ms in times.items()) + ratio)


def vit_rates(arch: str, image_size: int, batch: int, rounds: int,
              variants: Optional[Dict[str, dict]] = None) -> None:
    """Prints each variant's ViT images/s (eager, compiled; bf16 weights, same weights) and
    [CLS] cosine to the fp32 ViT, then the last variant's rate over the first's.
    ``variants`` maps names to ``BlipViT`` keywords (default: plain against fused)."""
    variants = variants or {'plain': {}, 'fused': dict(fused_epilogues=True)}
    torch.manual_seed(0)
    reference = BlipViT(arch, image_size=image_size).eval().cuda()
    models = {}
    for name, options in variants.items():
        models[name] = BlipViT(arch, image_size=image_size, **options).eval().cuda()
        models[name].load_state_dict(reference.state_dict())
        models[name].bfloat16()
    images = torch.randn(batch, 3, image_size, image_size, device='cuda')
    with torch.inference_mode():
        exact_cls = reference(images)[:, 0].float()
        runs: Dict[str, Callable[[], object]] = {}
        for name, model in models.items():
            cls = model(images.bfloat16())[:, 0].float()
            cosine = F.cosine_similarity(cls, exact_cls).min()
            print(f'  {name}: [CLS] cosine to the fp32 ViT >= {float(cosine):.6f}')
            compiled = torch.compile(model)
            start = time.perf_counter()
            compiled(images.bfloat16())
            print(f'  {name}: compiled in {time.perf_counter() - start:.0f} s')
            runs[f'{name} eager'] = lambda model=model: model(images.bfloat16())
            runs[f'{name} compiled'] = lambda compiled=compiled: compiled(images.bfloat16())
        rates: Dict[str, List[float]] = {name: [] for name in runs}
        for _ in range(rounds):
            for name, run in runs.items():
                rates[name].append(batch / median_ms(run) * 1e3)
    for name, values in rates.items():
        print(f'  {arch} {image_size} px batch {batch}, {name}: ' +
              ' / '.join(f'{v:.0f}' for v in values) + ' img/s')
    first, last = list(variants)[0], list(variants)[-1]
    for mode in ('eager', 'compiled'):
        print(f'  {last} / {first}, {mode}: '
              f'{max(rates[f"{last} {mode}"]) / max(rates[f"{first} {mode}"]):.3f}')


def vit_arguments_on_hopper(program: str, doc: str,
                            argv: Optional[List[str]]) -> argparse.Namespace:
    """A CUTLASS benchmark's options (the ViT's arch, image size, batch, timing rounds), after
    refusing to run without a Hopper GPU and building the kernels (with the time it took)."""
    parser = argparse.ArgumentParser(prog=program, description=doc.split('\n\n')[0])
    parser.add_argument('--arch', choices=sorted(VIT_SHAPES), default='vit_base_patch16')
    parser.add_argument('--image-size', type=int, default=384)
    parser.add_argument('--batch', type=int, default=128)
    parser.add_argument('--rounds', type=int, default=2, help='alternating timing rounds')
    args = parser.parse_args(argv)
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        sys.exit(f'{program} needs a Hopper GPU (sm_90)')
    start = time.perf_counter()
    cutlass_kernels.library()  # raises with the reason if the kernels cannot be built
    print(f'kernels ready in {time.perf_counter() - start:.0f} s')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    """Check values, then time the products and the ViT; 1 on a value failure."""
    args = vit_arguments_on_hopper('bench_fused_linear', __doc__, argv)
    torch.backends.cuda.matmul.allow_tf32 = False  # the fp32 reference stays fp32
    width = VIT_SHAPES[args.arch]['embed_dim']
    tokens = (args.image_size // VIT_SHAPES[args.arch]['patch_size']) ** 2 + 1
    rows = args.batch * tokens
    shapes = {'gelu': [(rows, 4 * width, width), (1000, 4 * width, width), (77, 264, 40)],
              'residual': [(rows, width, 4 * width), (rows, width, width), (1000, width, 40)]}
    print('values (relative Frobenius error against fp32):')
    with torch.inference_mode():
        failures = [f for op, cases in shapes.items() for case in cases
                    for f in value_errors(op, *case)]
        failures += gelu_mismatches(every_bf16_and_random_sums(1_000_000))
    print('products:')
    with torch.inference_mode():
        for op, cases in shapes.items():
            for case in cases[:1 if op == 'gelu' else 2]:
                product_times(op, *case)
    if failures:  # the products' times still tell what a fix would gain
        print('FAILED values, so no ViT rates: ' + '; '.join(failures))
        return 1
    print('ViT:')
    vit_rates(args.arch, args.image_size, args.batch, args.rounds)
    return 0


if __name__ == '__main__':
    sys.exit(main())
