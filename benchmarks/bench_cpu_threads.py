"""What two OpenMP threads on one core cost the main job: its products at two threads and one.

Each child of the CPU main job runs on one core with two threads (``harness/variant_jobs.py``),
because the thread count decides how some sums split and so the scores' bits. This benchmark
runs one of the main job's tiny BLIPs as such a child would (pinned to one CPU, batch
scheduling, passive OpenMP waits), captures every matrix product of one pre-training step on a
ToyWorld batch, and replays each product at two threads and at one: median milliseconds, and
whether the two results are the same bits. Then whole training steps in three settings,
rounds alternating in the same process: two threads with plain linear layers, two threads
with :mod:`backbones.one_thread_weight_gradients`'s layers (what every training runner uses;
it also checks that both models end with the same weights), and one thread::

    python -m benchmarks.bench_cpu_threads [--variant all] [--cpu 0]

A product whose bits differ is one that MKL splits along its summed dimension when it has two
threads; those are the weight gradients that the one-thread layers compute by MKL's split.
"""
import argparse
import functools
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from backbones.one_thread_weight_gradients import use_one_thread_weight_gradients
from benchmarks.suite import median_seconds
from harness.config import load_config
from harness.core.registry import MODELS
from harness.experiment import resolved_variant_config
from harness.variant_jobs import child_environment, parent_cpus, scheduled_as_child

MAIN_JOB = 'configs/ablation_sharing.py'
CPU = torch.device('cpu')
PRODUCTS = (torch.ops.aten.mm.default, torch.ops.aten.addmm.default,
            torch.ops.aten.bmm.default, torch.ops.aten.baddbmm.default)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--variant', default='all', help="the main job's variant to train")
    parser.add_argument('--cpu', type=int, default=None,
                        help='the CPU to pin to (default: the first this process may use)')
    parser.add_argument('--repeats', type=int, default=30, help='timed calls of each product')
    parser.add_argument('--steps', type=int, default=5, help='timed steps a round')
    parser.add_argument('--rounds', type=int, default=3, help='alternating step rounds')
    parser.add_argument('--as-child', action='store_true', help=argparse.SUPPRESS)
    return parser.parse_args(argv)


class TrainingStep:
    """One AdamW step per call of the main job's ``variant`` on a fixed ToyWorld batch of the
    job's size: the first training captions after a seeded shuffle, random images of the
    model's size (a product's shape depends on the sizes only). ``one_thread_gradients``
    converts the model's linear layers as every training runner does
    (:mod:`backbones.one_thread_weight_gradients`)."""

    def __init__(self, variant: str, one_thread_gradients: bool = False):
        cfg = resolved_variant_config(load_config(MAIN_JOB), variant)
        self.batch = cfg['batch_size']
        torch.manual_seed(0)
        self.model = MODELS.build(cfg['model']).train()
        if one_thread_gradients:
            use_one_thread_weight_gradients(self.model)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-3, weight_decay=0.05)
        records = json.loads((Path(cfg['data_root']) / 'annotations' /
                              'coco_karpathy_train.json').read_text())
        captions = [record['caption'] for record in records]
        random.Random(0).shuffle(captions)
        size = cfg['model']['vision']['image_size']
        self.images = torch.randn(self.batch, 3, size, size,
                                  generator=torch.Generator().manual_seed(0))
        self.texts = dict(text=captions[:self.batch])
        self.random_state = torch.get_rng_state()  # its own stream (ITM draws negatives)

    def __call__(self) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self.random_state)
            losses = self.model.loss(self.images, self.texts)
            sum(losses.values()).backward()
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.random_state = torch.get_rng_state()


def same_layout_copy(value):
    """A copy of a tensor argument in its layout (a transposed operand stays transposed; a
    broadcast or sliced one becomes contiguous)."""
    return value.clone() if isinstance(value, torch.Tensor) else value


class ProductRecorder(TorchDispatchMode):
    """Keeps each matrix product's operator and a copy of its arguments, in call order."""

    def __init__(self):
        super().__init__()
        self.calls: List[Tuple[object, list, dict]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in PRODUCTS:
            self.calls.append((func, [same_layout_copy(arg) for arg in args], kwargs or {}))
        return func(*args, **(kwargs or {}))


def product_label(func, args) -> str:
    """``'mm 128x960T @ 960x128'``: the operator and its matrices, ``T`` where one is read
    transposed (column-major)."""
    matrices = [arg for arg in args if isinstance(arg, torch.Tensor) and arg.dim() >= 2]
    shapes = ['x'.join(map(str, matrix.shape)) + ('T' if matrix.stride(-2) == 1 and
                                                  matrix.shape[-1] > 1 else '')
              for matrix in matrices]
    return f'{func.__name__.split(".")[0]} ' + ' @ '.join(shapes)


def median_ms(run: Callable[[], object], threads: int, repeats: int) -> float:
    """:func:`benchmarks.suite.median_seconds` of ``run`` at ``threads`` CPU threads, in
    milliseconds."""
    torch.set_num_threads(threads)
    return median_seconds(run, CPU, repeats) * 1e3


def product_rows(calls, repeats: int) -> List[Tuple[str, int, float, float, bool]]:
    """``(label, calls a step, ms at two threads, ms at one, same bits)`` per distinct product."""
    groups: Dict[str, list] = OrderedDict()
    for func, args, kwargs in calls:
        groups.setdefault(product_label(func, args), []).append((func, args, kwargs))
    rows = []
    for label, members in groups.items():
        func, args, kwargs = members[0]
        results = {}
        for threads in (2, 1):
            torch.set_num_threads(threads)
            results[threads] = func(*args, **kwargs)
        run = functools.partial(func, *args, **kwargs)
        rows.append((label, len(members), median_ms(run, 2, repeats), median_ms(run, 1, repeats),
                     torch.equal(results[1], results[2])))
    return rows


class StepSetting(NamedTuple):
    """How whole steps are timed: the setting's name, its thread count, and whether the
    model's linear layers compute weight gradients at one thread."""

    name: str
    threads: int
    one_thread_gradients: bool


STEP_SETTINGS = (StepSetting('2 threads', 2, False),
                 StepSetting('2 threads, one-thread weight gradients', 2, True),
                 StepSetting('1 thread', 1, False))


def step_times(steps: Dict[StepSetting, Callable[[], None]], count: int,
               rounds: int) -> Dict[str, List[float]]:
    """Seconds a step of each setting (its own step function at its thread count), by
    setting name, ``rounds`` rounds of ``count`` steps, the settings alternating."""
    times: Dict[str, List[float]] = {setting.name: [] for setting in steps}
    for _ in range(rounds):
        for setting, step in steps.items():
            torch.set_num_threads(setting.threads)
            step()
            start = time.perf_counter()
            for _ in range(count):
                step()
            times[setting.name].append((time.perf_counter() - start) / count)
    return times


def report(rows, times: Dict[str, List[float]], same_weights: bool, title: str) -> str:
    """The products table under ``title``, per-step totals and the step times."""
    lines = [title, '',
             '| product | a step | 2 threads (ms) | 1 thread (ms) | same bits |',
             '|---|---:|---:|---:|---|']
    for label, count, two, one, same in rows:
        lines.append(f'| {label} | {count} | {two:.3f} | {one:.3f} | {"yes" if same else "no"} |')
    lines.append('')
    for same in (True, False):
        chosen = [row for row in rows if row[4] == same]
        two = sum(row[1] * row[2] for row in chosen)
        one = sum(row[1] * row[3] for row in chosen)
        lines.append(f'products whose bits {"agree" if same else "differ"}: {two:.1f} ms a step '
                     f'at 2 threads, {one:.1f} at 1 ({two / max(one, 1e-9):.2f}x)')
    names = [setting.name for setting in STEP_SETTINGS]
    baseline = statistics.median(times[names[0]])
    lines.append(f'whole step (medians of {len(times[names[0]])} alternating rounds):')
    for name in names:
        median = statistics.median(times[name])
        lines.append(f'  {name}: {median * 1e3:.1f} ms ({baseline / median:.2f}x)')
    lines.append(f'same weights with and without one-thread weight gradients: {same_weights}')
    return '\n'.join(lines)


def measure(args: argparse.Namespace) -> str:
    """The benchmark itself, in a process already placed as a main-job child."""
    steps = {setting: TrainingStep(args.variant, setting.one_thread_gradients)
             for setting in STEP_SETTINGS}
    plain, converted = steps[STEP_SETTINGS[0]], steps[STEP_SETTINGS[1]]
    torch.set_num_threads(2)
    plain()
    recorder = ProductRecorder()
    with recorder:
        plain()
    converted()
    converted()  # as many steps at two threads as the plain model, for the weights check
    rows = product_rows(recorder.calls, args.repeats)
    times = step_times(steps, args.steps, args.rounds)
    same_weights = all(torch.equal(a, b) for a, b in zip(
        plain.model.state_dict().values(), converted.model.state_dict().values()))
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else []
    text = report(rows, times, same_weights,
                  f'The main job\'s `{args.variant}` variant, one pre-training step (batch '
                  f'{plain.batch}), CPUs {cpus}, OMP_WAIT_POLICY='
                  f'{os.environ.get("OMP_WAIT_POLICY")}:')
    print(text, flush=True)
    return text


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Starts the measuring child as the main job starts its children (one CPU, batch
    scheduling, the children's environment), or measures when it is that child."""
    args = parse_args(argv)
    if args.as_child:
        measure(args)
        return 0
    cpus = parent_cpus()
    cpu = args.cpu if args.cpu is not None else (cpus[0] if cpus else None)
    command = [sys.executable, '-m', 'benchmarks.bench_cpu_threads', '--as-child',
               *(argv if argv is not None else sys.argv[1:])]
    with scheduled_as_child(None if cpu is None else [cpu]):
        return subprocess.run(command, env=child_environment()).returncode


if __name__ == '__main__':
    sys.exit(main())
