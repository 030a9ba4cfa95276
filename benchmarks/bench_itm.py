"""ITM re-ranking throughput: our per-image key/value reuse vs Hugging Face BLIP, same shapes.

Both models carry the same random weights (HF's are drawn, then loaded into ours by
``backbones.checkpoint.load_checkpoint``; see :mod:`benchmarks.models`). Every image gets
``k`` candidate texts of 35 tokens, as in the retrieval protocol. Three rates are printed,
all in ITM pairs per second with the image tokens already encoded unless stated, and the
largest difference between our and HF's ITM match logits:

* ``ours``: :func:`tasks.retrieval.rerank.itm_match_logits` (one image's cross-attention
  keys/values computed once, expanded over its texts);
* ``hf itm``: the ``use_itm_head=True`` branch of ``BlipForImageTextRetrieval`` (its
  ``text_encoder`` on the image tokens + ``itm_head``), keys/values recomputed per pair;
* ``hf forward``: ``BlipForImageTextRetrieval(..., use_itm_head=True)`` on every pair, the
  only way its public API scores a pair (it re-encodes the image each time).

Run from the repository root::

    python -m benchmarks.bench_itm --shape tiny --device cpu --dtype fp32 --k 64
    python -m benchmarks.bench_itm --shape base --device cuda --dtype bf16 --k 256
"""
import argparse
import time
from typing import Callable, Dict

import torch
from transformers import BlipForImageTextRetrieval

from benchmarks.models import SHAPES, add_vocab_argument, blip_pair
from tasks.retrieval.rerank import itm_match_logits

TEXT_LENGTH = 35
WEIGHT_STD = 0.02  # BERT's init, on the vision side too
DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16}


def best_rates(runs: Dict[str, Callable[[], int]], device: torch.device,
               rounds: int) -> Dict[str, float]:
    """Best pairs/s of each run (which returns its pair count) over interleaved rounds.

    Rounds alternate between the runs and the best one counts, so a burst of load from
    elsewhere on the machine does not favour whichever run happened to go first.
    """
    best = {name: 0.0 for name in runs}
    for round_index in range(rounds + 1):  # round 0 warms up
        for name, run in runs.items():
            if device.type == 'cuda':
                torch.cuda.synchronize()
            start = time.perf_counter()
            pairs = run()
            if device.type == 'cuda':
                torch.cuda.synchronize()
            if round_index:
                best[name] = max(best[name], pairs / (time.perf_counter() - start))
    return best


def main():
    """Parse arguments, build both models, time the three ITM paths and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--shape', choices=sorted(SHAPES), default='tiny')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--dtype', choices=sorted(DTYPES), default='fp32')
    parser.add_argument('--k', type=int, default=128, help='candidate texts per image')
    parser.add_argument('--images', type=int, default=4, help='images per timed repeat')
    parser.add_argument('--itm-batch-size', type=int, default=128)
    parser.add_argument('--rounds', type=int, default=3, help='timed rounds (best one counts)')
    parser.add_argument('--forward-pairs', type=int, default=256,
                        help='pairs timed through the full HF forward (it re-encodes images)')
    add_vocab_argument(parser)
    args = parser.parse_args()
    device, dtype, shape = torch.device(args.device), DTYPES[args.dtype], SHAPES[args.shape]

    torch.manual_seed(0)
    hf, ours, _ = blip_pair(BlipForImageTextRetrieval, ('itc', 'itm'), shape=args.shape,
                            std=WEIGHT_STD, vocab=args.vocab, max_text_length=TEXT_LENGTH)
    hf.to(device, dtype)
    ours.to(device, dtype)
    size = shape.image_size
    images = torch.randn(args.images, 3, size, size, device=device, dtype=dtype)
    input_ids = torch.randint(1000, 30000, (args.k, TEXT_LENGTH))  # CPU, as in the re-rank
    input_ids[:, 0] = ours.tokenizer.cls_token_id
    hf_ids = ours.with_first_token(input_ids, ours.tokenizer.enc_token_id)  # ours does this inside
    attention_mask = torch.ones_like(input_ids)
    batch = args.itm_batch_size

    with torch.no_grad():
        our_embeds = ours.encode_image(images)
        hf_embeds = hf.vision_model(pixel_values=images).last_hidden_state

        def hf_itm_logits(image: int) -> torch.Tensor:
            """HF's ITM match logits of one image with every text, keys/values per pair."""
            logits = []
            for start in range(0, args.k, batch):
                ids = hf_ids[start:start + batch].to(device)
                image_embeds = hf_embeds[image:image + 1].expand(len(ids), -1, -1)
                mask = attention_mask[start:start + batch].to(device)
                image_mask = torch.ones(image_embeds.shape[:2], device=device, dtype=torch.long)
                hidden = hf.text_encoder(input_ids=ids, attention_mask=mask,
                                         encoder_hidden_states=image_embeds,
                                         encoder_attention_mask=image_mask).last_hidden_state
                logits.append(hf.itm_head(hidden[:, 0])[:, 1])
            return torch.cat(logits).float()

        def run_ours() -> int:
            for image in range(args.images):
                itm_match_logits(ours, our_embeds[image:image + 1], input_ids, attention_mask,
                                 batch)
            return args.images * args.k

        def run_hf_itm() -> int:
            for image in range(args.images):
                hf_itm_logits(image)
            return args.images * args.k

        def run_hf_forward() -> int:
            for start in range(0, args.forward_pairs, batch):
                count = min(batch, args.forward_pairs - start)
                hf(input_ids=hf_ids[:count].to(device),
                   attention_mask=attention_mask[:count].to(device),
                   pixel_values=images[:1].expand(count, -1, -1, -1), use_itm_head=True)
            return args.forward_pairs

        difference = (itm_match_logits(ours, our_embeds[:1], input_ids, attention_mask, batch)
                      - hf_itm_logits(0)).abs().max().item()
        rates = best_rates({'ours': run_ours, 'hf itm': run_hf_itm,
                            'hf forward': run_hf_forward}, device, args.rounds)

    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'
    print(f'ITM pairs/s, shape={args.shape}, {name}, {args.dtype}, k={args.k}, '
          f'itm_batch_size={batch}, {TEXT_LENGTH}-token texts, '
          f'{our_embeds.shape[1]} image tokens')
    for label, rate in rates.items():
        print(f'  {label:<11} {rate:10.1f}')
    print(f'  ours / hf itm     = {rates["ours"] / rates["hf itm"]:.2f}x')
    print(f'  ours / hf forward = {rates["ours"] / rates["hf forward"]:.2f}x')
    print(f'  max |ours - hf| ITM match logit (image 0, k texts) = {difference:.2e}')


if __name__ == '__main__':
    main()
