"""Where a pre-training step's time goes: ``torch.profiler`` over a few ITC+ITM+LM steps.

Prints the operators with the most device time and the most host time and writes a Chrome
trace (open it in ``chrome://tracing`` or Perfetto)::

    python -m benchmarks.profile_train_step --device cuda --out /tmp/profile
"""
import argparse
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.models import SHAPES, add_vocab_argument, our_blip
from benchmarks.synthetic import random_captions


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--shape', choices=sorted(SHAPES), default=None,
                        help='default: base on CUDA, tiny on the CPU')
    parser.add_argument('--batch', type=int, default=64)
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--rows', type=int, default=25, help='operators per table')
    parser.add_argument('--out', type=Path, default=Path('/tmp/profile'))
    add_vocab_argument(parser)
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> str:
    """Profile ``--steps`` steps after two warm-up steps; returns the printed tables."""
    args = parse_args(argv)
    device = torch.device(args.device)
    shape = args.shape or ('base' if device.type == 'cuda' else 'tiny')
    size = 224 if shape == 'base' else SHAPES[shape].image_size
    torch.manual_seed(0)
    model = our_blip(shape=shape, vocab=args.vocab, image_size=size,
                     queue_size=57600 if shape == 'base' else 16).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device.type == 'cuda')
    texts = random_captions(args.batch)
    images = torch.randn(args.batch, 3, size, size,
                         generator=torch.Generator().manual_seed(0)).to(device)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == 'cuda'):
            losses = model.loss(images, dict(text=texts))
        sum(losses.values()).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(2):
        step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == 'cuda'
                                           else [])
    with profile(activities=activities, record_shapes=True) as profiler:
        for _ in range(args.steps):
            step()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
    averages = profiler.key_averages()
    device_key = 'self_cuda_time_total' if device.type == 'cuda' else 'self_cpu_time_total'
    tables = '\n\n'.join([
        f'By device time ({args.steps} steps, batch {args.batch}, {shape}, {size} px):',
        averages.table(sort_by=device_key, row_limit=args.rows),
        'By host time:', averages.table(sort_by='self_cpu_time_total', row_limit=args.rows)])
    print(tables, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    profiler.export_chrome_trace(str(args.out / 'train_step_trace.json'))
    return tables


if __name__ == '__main__':
    main()
