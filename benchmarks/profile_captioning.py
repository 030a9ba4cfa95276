"""Where beam-3 caption time goes with CUDA-graph decoding (``cuda_graphs=True``).

Splits one batch's captioning into the image encoder, projecting the image keys/values
into the step buffers, the prompt pass, the decoding steps (count x time of one step) and
what is left: the beam bookkeeping between steps (log-softmax, top-k, finished hypotheses).
Random weights at BLIP's shapes, BLIP's beam settings (3 beams, max 20, min 5), the model
cast to ``--dtype``. On the CPU the step runs eagerly (no graphs). ``--without-kernels``
switches our Triton kernels off (few-query attention, row top-k), so the same split shows
what they give against SDPA, the explicit formula and ``torch.topk`` (the step buffers keep
their layout, which SDPA then reads through strided views)::

    python -m benchmarks.profile_captioning --device cuda --shape base --batch 512 1024 --dtype bf16
    python -m benchmarks.profile_captioning --device cuda --shape base --batch 1024 --dtype bf16 \\
        --without-kernels
    python -m benchmarks.profile_captioning --device cpu --batch 4
"""
import argparse
import contextlib
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import torch

from backbones import few_query_kernel, row_topk
from backbones.generation import DecodingConfig, beam_search, caption_prompt_ids
from backbones.static_decoding import StaticDecoderSteps
from benchmarks.bench_caption import DTYPES, PROMPT, WEIGHT_STD
from benchmarks.models import SHAPES, add_vocab_argument, our_blip, randomize_
from benchmarks.suite import median_seconds


@dataclass
class CaptionTimes:
    """Milliseconds of each part of captioning one batch (medians over repeats)."""

    batch: int
    encode: float
    setup: float
    prompt: float
    steps: int
    step: float
    decode: float

    @property
    def bookkeeping(self) -> float:
        """Decoding time not spent in set-up, the prompt or the steps themselves."""
        return self.decode - self.setup - self.prompt - self.steps * self.step

    @property
    def images_per_s(self) -> float:
        """Images captioned per second, image encoder included."""
        return self.batch / (self.encode + self.decode) * 1e3

    def line(self) -> str:
        """The split as one printed line."""
        return (f'batch {self.batch}: {self.images_per_s:.0f} img/s; image encoder '
                f'{self.encode:.1f} ms + decoding {self.decode:.1f} ms = set-up '
                f'{self.setup:.1f} + prompt {self.prompt:.1f} + {self.steps} steps x '
                f'{self.step:.2f} + beam bookkeeping {self.bookkeeping:.1f}')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    parser.add_argument('--shape', choices=sorted(SHAPES), default='tiny')
    parser.add_argument('--batch', type=int, nargs='+', default=[4], help='images per batch')
    parser.add_argument('--dtype', choices=sorted(DTYPES), default='fp32')
    parser.add_argument('--repeats', type=int, default=5, help='timed calls (median kept)')
    parser.add_argument('--without-kernels', action='store_true',
                        help='switch our Triton kernels off (few-query attention, row top-k)')
    add_vocab_argument(parser)
    return parser.parse_args(argv)


@contextlib.contextmanager
def triton_kernels_off(off: bool = True):
    """Our Triton kernels switched off for the block (no device left where they serve)."""
    kept = few_query_kernel.DEVICES, row_topk.DEVICES
    if off:
        few_query_kernel.DEVICES = row_topk.DEVICES = ()
    try:
        yield
    finally:
        few_query_kernel.DEVICES, row_topk.DEVICES = kept


def median_ms(run: Callable[[], object], device: torch.device, repeats: int) -> float:
    """:func:`benchmarks.suite.median_seconds` in milliseconds."""
    return median_seconds(run, device, repeats) * 1e3


@torch.no_grad()
def caption_times(model, images: torch.Tensor, config: DecodingConfig,
                  repeats: int) -> CaptionTimes:
    """Time each part of captioning ``images`` with CUDA-graph decoding steps."""
    device, batch = images.device, images.shape[0]
    decoder = model.text_decoder
    prompt = caption_prompt_ids(model, device).expand(batch, -1)
    embeds = model.encode_image(images)

    def static_steps() -> StaticDecoderSteps:
        return StaticDecoderSteps(decoder, embeds, None, config.num_beams,
                                  max_length=config.max_length)

    def decode(advances: Optional[list] = None):
        steps = static_steps()
        if advances is not None:  # count the steps taken
            advance = steps.advance
            steps.advance = lambda *args: advances.append(1) or advance(*args)
        return beam_search(steps, prompt, config)

    advances = []
    decode(advances)
    decode_ms = median_ms(decode, device, repeats)
    steps = static_steps()
    prompt_ms = median_ms(lambda: steps.start(prompt), device, repeats)
    steps.buffers.position.fill_(prompt.shape[1])  # a step after the prompt
    return CaptionTimes(
        batch=batch, encode=median_ms(lambda: model.encode_image(images), device, repeats),
        setup=median_ms(static_steps, device, repeats), prompt=prompt_ms, steps=len(advances),
        step=median_ms(lambda: steps.step(decoder), device, repeats), decode=decode_ms)


def main(argv: Optional[Sequence[str]] = None) -> List[CaptionTimes]:
    """Print the split of each ``--batch``; returns them."""
    args = parse_args(argv)
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    model = our_blip(('lm',), shape=args.shape, vocab=args.vocab, prompt=PROMPT)
    randomize_(model, std=WEIGHT_STD)
    model.to(device, dtype).eval()
    tokenizer = model.tokenizer
    config = DecodingConfig(eos_token_id=tokenizer.sep_token_id,
                            pad_token_id=tokenizer.pad_token_id, num_beams=3, max_length=20,
                            min_length=5)
    size = SHAPES[args.shape].image_size
    kernels = 'off' if args.without_kernels else 'ours where they serve'
    print(f'shape={args.shape} device={args.device} dtype={args.dtype} beams=3 max_length=20 '
          f'Triton kernels={kernels}', flush=True)
    results = []
    with triton_kernels_off(args.without_kernels):
        for batch in args.batch:
            images = torch.randn(batch, 3, size, size,
                                 generator=torch.Generator().manual_seed(0))
            results.append(caption_times(model, images.to(device, dtype), config,
                                         args.repeats))
            print(results[-1].line(), flush=True)
    return results


if __name__ == '__main__':
    main()
