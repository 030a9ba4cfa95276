"""Caption throughput: our decoding loop vs Hugging Face transformers' BLIP ``generate``.

Both models carry the same random weights (HF's are drawn, then loaded into ours by
``backbones.checkpoint.load_checkpoint``; see :mod:`benchmarks.models`), run
beam search (3 beams, max_length 20, min_length 5, BLIP's captioning settings) on the
same images, and are timed end to end (image encoder + decoding, ids out). Prints
captions/s of each, the ratio ours/HF, and whether the captions were token-identical.

Run from the repository root:

    python -m benchmarks.bench_caption --shape tiny --device cpu --batch 8
    python -m benchmarks.bench_caption --shape base --device cuda --batch 64 --dtype bf16
"""
import argparse
import statistics
import time

import torch
from transformers import BlipForConditionalGeneration

from backbones.generation import DecodingConfig, caption_prompt_ids, generate_ids
from benchmarks.models import SHAPES, add_vocab_argument, blip_pair

PROMPT = 'a picture of '
WEIGHT_STD = 0.02  # BERT's init, on the vision side too
DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16}


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--shape', choices=sorted(SHAPES), default='tiny')
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    parser.add_argument('--batch', type=int, default=8, help='images per generate call')
    parser.add_argument('--dtype', choices=sorted(DTYPES), default='fp32')
    parser.add_argument('--repeats', type=int, default=5, help='timed calls (median reported)')
    add_vocab_argument(parser)
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args()


def median_seconds(runs: dict, repeats: int, device: str) -> dict:
    """Median wall time per call of each ``runs[name]()``, after one warm-up call each.

    Calls alternate between the runs, so a load change on a shared machine hits both alike.
    """
    times = {name: [] for name in runs}
    for run in runs.values():
        run()
    for _ in range(repeats):
        for name, run in runs.items():
            if device == 'cuda':
                torch.cuda.synchronize()
            start = time.perf_counter()
            run()
            if device == 'cuda':
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def through_eos(ids: torch.Tensor, eos: int) -> list:
    """Rows cut after the first eos (HF pads finished beams with eos when pad id is 0)."""
    return [row[:row.index(eos) + 1] if eos in row else row for row in ids.tolist()]


def main():
    """Time both implementations and print captions/s and their ratio."""
    args = parse_args()
    torch.manual_seed(args.seed)
    dtype = DTYPES[args.dtype]
    hf, ours, _ = blip_pair(BlipForConditionalGeneration, ('lm',), shape=args.shape,
                            seed=args.seed, std=WEIGHT_STD, vocab=args.vocab, prompt=PROMPT)
    hf.to(args.device, dtype)
    ours.to(args.device, dtype)
    image_size = SHAPES[args.shape].image_size
    images = torch.randn(args.batch, 3, image_size, image_size, device=args.device, dtype=dtype)
    tokenizer = ours.tokenizer
    hf_prompt = tokenizer([PROMPT] * args.batch, 40, device=args.device)['input_ids']
    our_prompt = caption_prompt_ids(ours, args.device)
    config = DecodingConfig(eos_token_id=tokenizer.sep_token_id,
                            pad_token_id=tokenizer.pad_token_id, num_beams=3, max_length=20,
                            min_length=5, length_normalization='hf')  # HF's current rule

    @torch.no_grad()
    def run_hf():
        return hf.generate(pixel_values=images, input_ids=hf_prompt.clone(), num_beams=3,
                           max_length=20, min_length=5)

    @torch.no_grad()
    def run_ours():
        return generate_ids(ours.text_decoder, ours.encode_image(images), our_prompt, config)

    identical = through_eos(run_ours(), config.eos_token_id) == \
        through_eos(run_hf(), config.eos_token_id)
    seconds = median_seconds({'hf': run_hf, 'ours': run_ours}, args.repeats, args.device)
    hf_rate, our_rate = args.batch / seconds['hf'], args.batch / seconds['ours']
    print(f'shape={args.shape} device={args.device} dtype={args.dtype} batch={args.batch} '
          f'beams=3 max_length=20 torch_threads={torch.get_num_threads()}')
    print(f'HF transformers BLIP generate: {hf_rate:9.2f} captions/s')
    print(f'ours (generate_ids):           {our_rate:9.2f} captions/s')
    print(f'ratio ours/HF: {our_rate / hf_rate:.2f}x   token-identical: {identical}')


if __name__ == '__main__':
    main()
