"""An experiment's (variant, seed) runs shared among N child processes (``--jobs N``).

The runs are dealt round-robin into N groups (the main job's four variants: ``all`` and
``all_but_sa`` in one, ``all_but_ca`` and ``none`` in the other); each group runs one run
after another in a child process, ``harness/run.py CONFIG ... --variant-job FILE``, where
``FILE`` lists its runs and receives their stage times. A child computes each run as one
sequential process would (same stages, data and thread count), so every score keeps its
bits. What it buys is the idle time of one process: Python, batch loading and
single-threaded operators leave part of the cores unused, which the other child fills.
A child is started once per group, not per run, so imports, the METEOR scorer and decoded
images are paid for once per group.

How children share the CPUs: each keeps the parent's thread count (``OMP_NUM_THREADS`` and
``MKL_NUM_THREADS`` set to ``torch.get_num_threads()`` unless the user set them), because
the thread count decides how reductions split and so the bits of the result. When there are
at least as many CPUs as children, each child is pinned to its own contiguous share of the
parent's CPUs, so its threads take turns on its cores instead of being preempted by the
other child's in the middle of a parallel region; children are scheduled as batch work
(``SCHED_BATCH``: a woken thread does not preempt a running one), and wait for a busy
OpenMP thread passively (``OMP_WAIT_POLICY=PASSIVE`` unless set), so a spinning wait does
not hold a core another thread needs.

Groups run side by side, so they do not copy each other's shareable stages
(``Stage.shareable``) unless one finished before the other reached it: experiments whose
variants share stages (the CapFilt ablations) are best run with one job.
"""
import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator, List, Optional, Sequence, Tuple

import torch
from mmengine.logging import print_log

from harness.core.files import atomic_write_json
from harness.stage_times import StageTime

Run = Tuple[str, int]  # (variant, seed)
POLL_SECONDS = 0.2


class VariantJobFailed(RuntimeError):
    """One or more children ended with an error (their output was shown, prefixed)."""


@dataclass(frozen=True)
class VariantJob:
    """One child: its label (``'job 1/2'``), its runs, command line and job file (which
    lists the runs for the child and gets their stage times once it has finished)."""

    label: str
    runs: Sequence[Run]
    command: Sequence[str]
    job_file: Path


def run_groups(runs: Sequence[Run], jobs: int) -> List[List[Run]]:
    """``runs`` dealt round-robin into at most ``jobs`` non-empty groups, order kept."""
    return [list(runs[index::jobs]) for index in range(min(jobs, len(runs)))]


def write_job_file(path: Path, runs: Sequence[Run]) -> None:
    """List a child's runs in its job file (the parent writes it before starting the child)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, dict(runs=[list(run) for run in runs]))


def job_runs(path: Path) -> List[Run]:
    """The runs a job file lists."""
    return [(variant, int(seed)) for variant, seed in json.loads(Path(path).read_text())['runs']]


def finish_job_file(path: Path, times: Sequence[StageTime]) -> None:
    """Add the stage times of a child's runs to its job file (the child's last act)."""
    atomic_write_json(path, dict(runs=[list(run) for run in job_runs(path)],
                                 times=[dataclasses.asdict(time) for time in times]))


def job_times(path: Path) -> List[StageTime]:
    """The stage times a finished child left in its job file."""
    return [StageTime(**fields) for fields in json.loads(Path(path).read_text())['times']]


def describe_runs(runs: Sequence[Run]) -> str:
    """``'all seed 0, none seed 0'``."""
    return ', '.join(f'{variant} seed {seed}' for variant, seed in runs)


def job_command(base: Sequence[str], job_file: Path) -> List[str]:
    """The child's command line: ``base`` (``harness/run.py CONFIG`` and the options every
    run shares) and its job file."""
    return [sys.executable, *base, '--variant-job', str(job_file)]


def child_environment() -> dict:
    """The children's environment: this one, with unbuffered output (their lines reach the
    terminal as they are written), this process's thread count and passive OpenMP waiting
    unless the user chose."""
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    threads = str(torch.get_num_threads())
    env.setdefault('OMP_NUM_THREADS', threads)
    env.setdefault('MKL_NUM_THREADS', threads)
    env.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    return env


def cpu_shares(jobs: int, cpus: Sequence[int]) -> List[Optional[List[int]]]:
    """The CPUs each of ``jobs`` children is pinned to: ``cpus`` (sorted) cut into ``jobs``
    contiguous shares as even as they go; ``None`` for every child (not pinned, all share
    every CPU) when there are fewer CPUs than children."""
    if len(cpus) < jobs:
        return [None] * jobs
    ordered = sorted(cpus)
    bounds = [len(ordered) * index // jobs for index in range(jobs + 1)]
    return [ordered[start:end] for start, end in zip(bounds, bounds[1:])]


def parent_cpus() -> List[int]:
    """The CPUs this process may run on; none where the platform cannot say or pin (then
    children are not pinned)."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else []


@contextmanager
def scheduled_as_child(cpus: Optional[Sequence[int]]) -> Iterator[Optional[Sequence[int]]]:
    """Within the block, the calling thread runs on ``cpus`` (Linux), as batch work if it
    had the normal policy, so a process started there inherits both; the thread's own CPUs
    and policy come back after. Yields ``cpus``, or ``None`` where nothing was changed:
    ``cpus`` None, a platform without these calls, or a system that refused them (a
    container's policy), where the child simply shares every CPU."""
    if cpus is None or not hasattr(os, 'sched_setaffinity'):
        yield None
        return
    own_cpus, own_policy = os.sched_getaffinity(0), os.sched_getscheduler(0)
    own_param = os.sched_getparam(0)
    try:
        os.sched_setaffinity(0, cpus)
    except OSError:
        yield None
        return
    try:
        if own_policy == os.SCHED_OTHER:
            os.sched_setscheduler(0, os.SCHED_BATCH, own_param)
    except OSError:
        pass  # pinned still; the batch policy only spares some context switches
    try:
        yield cpus
    finally:
        if os.sched_getscheduler(0) != own_policy:
            os.sched_setscheduler(0, own_policy, own_param)
        os.sched_setaffinity(0, own_cpus)


def describe_cpus(cpus: Optional[Sequence[int]]) -> str:
    """``' on CPU 0'``, ``' on CPUs 0-3'``, ``' on CPUs 0, 2'``; empty when not pinned."""
    if cpus is None:
        return ''
    if len(cpus) == 1:
        return f' on CPU {cpus[0]}'
    if list(cpus) == list(range(cpus[0], cpus[-1] + 1)):
        return f' on CPUs {cpus[0]}-{cpus[-1]}'
    return f' on CPUs {", ".join(map(str, cpus))}'


def relay_lines(label: str, stream: IO[str], lock: threading.Lock) -> None:
    """Print each line of a child's output with its label in front."""
    for line in stream:
        with lock:
            print(f'[{label}] {line.rstrip()}', flush=True)


def run_variant_jobs(jobs: Sequence[VariantJob]) -> List[StageTime]:
    """Run every job's child at once and wait for all; returns their stage times (in the
    jobs' order). A failed child does not stop the others (their stages are kept); once
    all have ended, :class:`VariantJobFailed` names the failed ones."""
    lock = threading.Lock()
    started = time.perf_counter()
    children, relays = [], []
    try:
        for job, share in zip(jobs, cpu_shares(len(jobs), parent_cpus())):
            with scheduled_as_child(share) as cpus:
                with lock:
                    print_log(f'[{job.label}] runs {describe_runs(job.runs)}'
                              f'{describe_cpus(cpus)}', logger='current')
                child = subprocess.Popen(list(job.command), stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True,
                                         env=child_environment())
            relay = threading.Thread(target=relay_lines, args=(job.label, child.stdout, lock),
                                     daemon=True)
            relay.start()
            children.append(child)
            relays.append(relay)
        codes = {}
        while len(codes) < len(jobs):
            for index, (job, child) in enumerate(zip(jobs, children)):
                if index in codes or child.poll() is None:
                    continue
                relays[index].join()
                codes[index] = code = child.returncode
                outcome = f' with exit code {code}' if code else ''
                with lock:
                    print_log(f'[{job.label}] ended after {time.perf_counter() - started:.1f} '
                              f's{outcome}', logger='current')
            if len(codes) < len(jobs):
                time.sleep(POLL_SECONDS)
    finally:
        for child in children:  # interrupted (Ctrl-C, an error here): leave no orphans
            if child.poll() is None:
                child.terminate()
                child.wait()
    failed = [f'{jobs[index].label} (exit code {code})' for index, code in sorted(codes.items())
              if code]
    if failed:
        raise VariantJobFailed(
            f'{", ".join(failed)} failed: its output above, each line prefixed with its '
            f'label, ends with the error; every stage finished so far is kept, so the same '
            f'command goes on from there once the cause is fixed')
    return [time for job in jobs for time in job_times(job.job_file)]
