"""Our Triton kernels run on CPU tensors by Triton's interpreter, as a subprocess.

The interpreter must be chosen before Triton is imported, so ``test_triton_kernels`` runs
this file with ``TRITON_INTERPRET=1`` and reads the JSON it prints:

* few-query attention: per case the kernel's largest error against an fp32 reference and
  that reference's own rounding to the case's dtype (the per-row kernel for short caches
  too, also reading keys through a row table), and for static decoding through the kernel
  the largest logit error of the kernel and of the path it replaces (the same dtype,
  kernel off) against fp32 cached decoding;
* row top-k: per case whether values, indices and tie order are right, and whether beam
  search returns the same ids through the kernel as through ``torch.topk``.
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

if os.environ.get('TRITON_INTERPRET') != '1':
    sys.exit('run with TRITON_INTERPRET=1: the kernel runs on CPU tensors only interpreted')

from backbones import few_query_kernel as fqa  # noqa: E402
from backbones import generation, med, row_topk  # noqa: E402

fqa.DEVICES = row_topk.DEVICES = ('cpu',)
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


def random_in(dtype):
    """``randn(*shape)`` drawing from :data:`SEED`, cast to ``dtype``."""
    return lambda *shape: torch.randn(*shape, generator=SEED).to(dtype)


def head_split_query(randn, rows, length, heads, dim):
    """A head-split view of a random ``[rows, L, H*D]`` projection (the layout the model
    hands over)."""
    return randn(rows, length, heads * dim).unflatten(-1, (heads, dim)).transpose(1, 2)


def error_report(case, query, out, keys, values, rows_per_image, bias, dtype):
    """The kernel's largest error against the fp32 reference, beside that reference's own
    rounding to ``dtype`` (the least error an output in ``dtype`` can have)."""
    expected = reference(query, keys, values, rows_per_image, bias)
    return dict(case=case, kernel=(out.float() - expected).abs().max().item(),
                rounding=(expected.to(dtype).float() - expected).abs().max().item(),
                out_layout_contiguous=out.transpose(1, 2).is_contiguous(),
                shape_kept=list(out.shape) == list(query.shape))


def kernel_case(images, rows_per_image, length, tokens, bias_kind, dtype, heads=2, dim=16):
    """Kernel errors on a head-split query over per-image keys/values."""
    randn = random_in(dtype)
    query = head_split_query(randn, images * rows_per_image, length, heads, dim)
    keys, values = randn(images, heads, tokens, dim), randn(images, heads, tokens, dim)
    bias = {'none': None,
            'per-image': (torch.rand(images, 1, 1, tokens, generator=SEED) < 0.3) * -1e4,
            'shared': (torch.arange(tokens) > tokens // 2)[None, None, None] * -1e4}[bias_kind]
    bias = None if bias is None else bias.to(dtype)
    out = fqa.few_query_attention(query, keys, values, rows_per_image, bias)
    return error_report(f'{images}x{rows_per_image}x{length} over {tokens}, bias {bias_kind}, '
                        f'{dtype}', query, out, keys, values, rows_per_image, bias, dtype)


def key_rows_case(dtype, rows=5, tokens=12, heads=3, dim=32):
    """The per-row kernel reading each key from the row a ``key_rows`` table names (a beam's
    history in a shared cache), against the fp32 reference on the gathered keys/values."""
    randn = random_in(dtype)
    query = head_split_query(randn, rows, 1, heads, dim)
    key_value = med.ExplicitKeyValue(randn(rows, heads, tokens, dim),
                                     randn(rows, heads, tokens, dim),
                                     torch.randint(0, rows, (rows, tokens), generator=SEED))
    bias = ((torch.arange(tokens) > tokens - 4)[None, None, None] * -1e4).to(dtype)
    out = fqa.few_query_attention(query, key_value.keys, key_value.values, 1, bias,
                                  key_value.rows)
    return error_report(f'key rows, {dtype}', query, out, *key_value.gathered(), 1, bias,
                        dtype)


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


def topk_case(columns, k, kind):
    """Whether the kernel's top ``k`` of 4 rows are ``torch.topk``'s values, at entries
    holding them, in order, with ties (``kind='ties'``: small integers) by lower index."""
    scores = torch.randn(4, columns, generator=SEED)
    if kind == 'ties':
        scores = torch.randint(0, 40, (4, columns), generator=SEED).float()
    elif kind == 'few finite':
        scores[:, k // 2:] = float('-inf')
    values, indices = row_topk.row_topk(scores, k)
    expected = scores.topk(k, dim=1).values
    in_order = all(sorted(zip((-values[r]).tolist(), indices[r].tolist()))
                   == list(zip((-values[r]).tolist(), indices[r].tolist())) for r in range(4))
    return dict(case=f'{columns} columns, k={k}, {kind}', values=torch.equal(values, expected),
                found_there=torch.equal(scores.gather(1, indices), values),
                distinct=all(len(set(row)) == k for row in indices.tolist()),
                ties_by_index=in_order)


def beam_case():
    """Beam-3 ids of a tiny BLIP (fp32) with candidates chosen by the kernel and by
    ``torch.topk``, and how many times the kernel ran."""
    from hf_builders import TINY_IMAGE_SIZE, tiny_blip

    from backbones.generation import DecodingConfig, caption_prompt_ids, generate_ids

    torch.manual_seed(0)
    model = tiny_blip(losses=('lm',), prompt='a picture of ').eval()
    with torch.no_grad():  # wide weights: captions that differ between images
        for parameter in model.text_decoder.parameters():
            parameter.normal_(0, 0.1)
    images = torch.randn(3, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE,
                         generator=torch.Generator().manual_seed(1))  # whatever ran before
    config = DecodingConfig(eos_token_id=102, pad_token_id=0, num_beams=3, max_length=9)
    calls = []
    kernel_call = row_topk.row_topk

    def counted(scores, k):
        calls.append(k)
        return kernel_call(scores, k)
    row_topk.row_topk = counted

    def ids(kernel_on):
        generation.row_topk = row_topk if kernel_on else None
        with torch.no_grad():
            return generate_ids(model.text_decoder, model.encode_image(images),
                                caption_prompt_ids(model), config).tolist()
    plain = ids(False)
    through_kernel = ids(True)
    return dict(same_ids=through_kernel == plain, kernel_calls=len(calls), ids=plain)


if __name__ == '__main__':
    # One query per row over at most SHORT_CACHE_TOKENS keys goes to the per-row kernel:
    # the last three shapes (the third with heads in three blocks of one).
    cases = [kernel_case(*shape, bias, dtype, **heads)
             for dtype in (torch.float32, torch.float16)
             for shape, bias, heads in (((3, 3, 1, 70), 'none', {}),
                                        ((3, 3, 1, 70), 'per-image', {}),
                                        ((2, 2, 3, 65), 'per-image', {}),
                                        ((1, 16, 1, 5), 'none', {}),
                                        ((6, 1, 1, 20), 'shared', {}),
                                        ((4, 1, 1, 9), 'per-image', {}),
                                        ((2, 1, 1, 40), 'per-image', dict(heads=3, dim=64)))]
    cases += [key_rows_case(dtype) for dtype in (torch.float32, torch.float16)]
    topk_cases = [topk_case(*case) for case in ((91572, 6, 'random'), (9000, 6, 'ties'),
                                                (300, 16, 'random'), (20, 8, 'few finite'),
                                                (5000, 1, 'random'))]
    print(json.dumps(dict(cases=cases, decoding=decoding_case(), topk=topk_cases,
                          beam=beam_case())))
