"""A pre-training loop's throughput: consecutive ITC+ITM+LM steps, timed from the first to
the last, eager steps next to the whole step as one CUDA graph (``GraphedTrainStep``).

The suite times each step alone (synchronised before and after), so a step's host work, such
as tokenising its texts, cannot overlap the GPU work of the step before as it does in a
training loop; this measures the loop. Both loops tokenise their texts every step::

    python -m benchmarks.bench_train_loop --device cuda --compile-layers --reuse-image-kv
"""
import argparse
import dataclasses
import time
from typing import Callable, List, Optional, Sequence

import torch

from benchmarks.models import add_pretraining_arguments, pretraining_shape
from benchmarks.suite import TrainSetting, pretraining_step, sync
from benchmarks.synthetic import random_captions

WARMUP_STEPS = 5  # the graph's eager warm-up steps, its capture and a first replay


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_pretraining_arguments(parser, steps=30)
    parser.add_argument('--compile-layers', action='store_true',
                        help='compile each ViT block and MED layer (both loops)')
    parser.add_argument('--reuse-image-kv', action='store_true',
                        help='Blip(reuse_image_kv=True) (both loops)')
    return parser.parse_args(argv)


def loop_rate(step: Callable[[], None], steps: int, batch: int, device: torch.device) -> float:
    """Images per second over ``steps`` consecutive calls of ``step`` (after the warm-up)."""
    for _ in range(WARMUP_STEPS):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return batch * steps / (time.perf_counter() - start)


def main(argv: Optional[Sequence[str]] = None) -> List[str]:
    """Run both loops; returns the printed lines."""
    args = parse_args(argv)
    device = torch.device(args.device)
    cuda = device.type == 'cuda'
    texts = random_captions(args.batch)
    setting = TrainSetting('bf16' if cuda else 'fp32', bf16=cuda,
                           compiled_layers='default' if args.compile_layers else None,
                           reuse_image_kv=args.reuse_image_kv)
    graph_name = 'whole-step CUDA graph' if cuda else 'whole step (eager off CUDA)'
    rates = {}
    for name in ('eager steps', graph_name):
        loop = dataclasses.replace(setting, whole_step_graph=name == graph_name)
        step, size = pretraining_step(loop, args.shape, device, args.vocab, texts)
        rates[name] = loop_rate(step, args.steps, args.batch, device)
        del step
    settings = (f'{pretraining_shape(args.shape, device)}, batch {args.batch}, {size} px, '
                f'{setting.label}, '
                f'{args.steps} consecutive steps'
                + (', compiled layers' if args.compile_layers else '')
                + (', image K/V once' if args.reuse_image_kv else ''))
    lines = [f'{name:<24} {rate:8.1f} img/s   [{settings}]' for name, rate in rates.items()]
    lines.append(f'{graph_name} / eager steps: {rates[graph_name] / rates["eager steps"]:.2f}x')
    print('\n'.join(lines))
    return lines


if __name__ == '__main__':
    main()
