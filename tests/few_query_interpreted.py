"""The few-query Triton kernel run on CPU tensors by Triton's interpreter, as a subprocess.

The interpreter must be chosen before Triton is imported, so ``test_few_query_attention``
runs this file with ``TRITON_INTERPRET=1`` and reads the JSON it prints: for each case the
largest error of the kernel and of the path it replaces (SDPA or the explicit formula, in
the same dtype) against an fp32 reference, and for static decoding through the kernel the
largest logit error of both paths against fp32 cached decoding.
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

if os.environ.get('TRITON_INTERPRET') != '1':
    sys.exit('run with TRITON_INTERPRET=1: the kernel runs on CPU tensors only interpreted')

from backbones import few_query_kernel as fqa  # noqa: E402
from backbones import med  # noqa: E402

fqa.DEVICES = ('cpu',)
SEED = torch.Generator().manual_seed(0)


def reference(query, keys, values, rows_per_image, bias):
    """fp32 SDPA with every image's keys/values repeated for its rows."""
    def per_row(tensor):
        return tensor.float().repeat_interleave(rows_per_image, 0)
    if bias is not None and bias.shape[0] > 1:
        bias = per_row(bias)
    return F.scaled_dot_product_attention(
        query.float(), per_row(keys), per_row(values),
        attn_mask=None if bias is None else bias.float())


def kernel_case(images, rows_per_image, length, tokens, bias_kind, dtype, heads=2, dim=16):
    """Kernel and same-dtype SDPA errors on a head-split view of a ``[rows, L, H*D]``
    projection (the layout the model hands over)."""
    def randn(*shape):
        return torch.randn(*shape, generator=SEED).to(dtype)
    query = randn(images * rows_per_image, length, heads * dim).unflatten(
        -1, (heads, dim)).transpose(1, 2)
    keys, values = randn(images, heads, tokens, dim), randn(images, heads, tokens, dim)
    bias = {'none': None,
            'per-image': (torch.rand(images, 1, 1, tokens, generator=SEED) < 0.3) * -1e4,
            'shared': (torch.arange(tokens) > tokens // 2)[None, None, None] * -1e4}[bias_kind]
    bias = None if bias is None else bias.to(dtype)
    expected = reference(query, keys, values, rows_per_image, bias)
    out = fqa.few_query_attention(query, keys, values, rows_per_image, bias)
    plain = reference(query.to(dtype), keys, values, rows_per_image, bias)
    return dict(case=f'{images}x{rows_per_image}x{length} over {tokens}, bias {bias_kind}, '
                     f'{dtype}',
                kernel=(out.float() - expected).abs().max().item(),
                plain=(plain.to(dtype).float() - expected).abs().max().item(),
                out_layout_contiguous=out.transpose(1, 2).is_contiguous(),
                shape_kept=list(out.shape) == list(query.shape))


def decoding_case():
    """Static decoding of a tiny fp16 BLIP through the kernel against fp32 cached decoding
    (and the same fp16 decoding with the kernel switched off)."""
    from hf_builders import TINY_IMAGE_SIZE, tiny_blip

    from backbones.generation import CachedDecoderSteps, caption_prompt_ids
    from backbones.static_decoding import StaticDecoderSteps

    torch.manual_seed(0)
    model = tiny_blip(losses=('lm',), prompt='a picture of ').eval()
    images = torch.randn(3, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE, generator=SEED)
    calls = []
    kernel_call = fqa.few_query_attention

    def counted(*args):
        calls.append(args[3])  # rows_per_image
        return kernel_call(*args)
    fqa.few_query_attention = counted

    def logits(dtype, static, kernel_on):
        med.few_query_kernel = fqa if kernel_on else None
        decoder = model.text_decoder.to(dtype)
        with torch.no_grad():
            embeds = model.encode_image(images).to(dtype)
            prompt = caption_prompt_ids(model).expand(3, -1)
            steps = (StaticDecoderSteps(decoder, embeds, None, 3, max_length=10) if static
                     else CachedDecoderSteps(decoder, embeds, None, 3))
            out = [steps.start(prompt)]
            parents = torch.tensor([0, 0, 1, 3, 5, 5, 8, 7, 6])
            for token in (1037, 2003, 1996):
                out.append(steps.advance(torch.full((9,), token), parents))
        return torch.stack(out).float()

    expected = logits(torch.float32, static=False, kernel_on=False)
    calls.clear()
    through_kernel = logits(torch.float16, static=True, kernel_on=True)
    kernel_calls = list(calls)
    plain = logits(torch.float16, static=True, kernel_on=False)
    return dict(kernel=(through_kernel - expected).abs().max().item(),
                plain=(plain - expected).abs().max().item(),
                kernel_calls=kernel_calls, layers=len(model.text_decoder.bert.encoder.layer))


if __name__ == '__main__':
    cases = [kernel_case(*shape, bias, dtype)
             for dtype in (torch.float32, torch.float16)
             for shape, bias in (((3, 3, 1, 70), 'none'), ((3, 3, 1, 70), 'per-image'),
                                 ((2, 2, 3, 65), 'per-image'), ((1, 16, 1, 5), 'none'),
                                 ((6, 1, 1, 20), 'shared'))]
    print(json.dumps(dict(cases=cases, decoding=decoding_case())))
