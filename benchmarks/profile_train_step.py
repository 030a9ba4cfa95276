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

from benchmarks.models import add_pretraining_arguments, pretraining_shape
from benchmarks.suite import TrainSetting, pretraining_step
from benchmarks.synthetic import random_captions


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_pretraining_arguments(parser, steps=5)
    parser.add_argument('--rows', type=int, default=25, help='operators per table')
    parser.add_argument('--out', type=Path, default=Path('/tmp/profile'))
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> str:
    """Profile ``--steps`` steps after two warm-up steps; returns the printed tables."""
    args = parse_args(argv)
    device = torch.device(args.device)
    bf16 = device.type == 'cuda'
    step, size = pretraining_step(TrainSetting('bf16' if bf16 else 'fp32', bf16=bf16),
                                  args.shape, device, args.vocab, random_captions(args.batch))
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
        f'By device time ({args.steps} steps, batch {args.batch}, '
        f'{pretraining_shape(args.shape, device)}, {size} px):',
        averages.table(sort_by=device_key, row_limit=args.rows),
        'By host time:', averages.table(sort_by='self_cpu_time_total', row_limit=args.rows)])
    print(tables, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    profiler.export_chrome_trace(str(args.out / 'train_step_trace.json'))
    return tables


if __name__ == '__main__':
    main()
