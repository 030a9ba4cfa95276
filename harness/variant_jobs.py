"""An experiment's (variant, seed) runs as child processes, several at a time (``--jobs N``).

Each run is ``harness/run.py CONFIG --variant V --seed S ... --variant-job FILE`` in its own
process: the same stages, data and thread count as in one sequential process, so every
score keeps its bits (the sequential default and ``--jobs 2`` wrote the same main-job board
on the CPU). What it buys is the idle time of one process: Python, data loading and
single-threaded operators leave part of the cores unused, which a second run fills.
Children wait for a busy OpenMP core passively (``OMP_WAIT_POLICY=PASSIVE`` unless set),
so a spinning wait does not take the core from the other run.

Runs started together do not copy each other's shareable stages (``Stage.shareable``): each
copies only what another run finished before it reached that stage, so experiments whose
variants share stages (the CapFilt ablations) are best run with one job.
"""
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, List, Optional, Sequence

from mmengine.logging import print_log

from harness.stage_times import StageTime, load_stage_times

POLL_SECONDS = 0.2


class VariantJobFailed(RuntimeError):
    """One or more child runs ended with an error (their output was shown, prefixed)."""


@dataclass(frozen=True)
class VariantJob:
    """One child run: its label (``'<variant> seed <seed>'``), command line and the file in
    which it leaves its stage times."""

    label: str
    command: Sequence[str]
    times_file: Path


def child_environment() -> dict:
    """The children's environment: this one, with unbuffered output (their lines reach the
    terminal as they are written) and passive OpenMP waiting unless the user chose."""
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    env.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    return env


def relay_lines(label: str, stream: IO[str], lock: threading.Lock) -> None:
    """Print each line of a child's output with its label in front."""
    for line in stream:
        with lock:
            print(f'[{label}] {line.rstrip()}', flush=True)


class RunningJob:
    """A started child, the thread relaying its output and its start time."""

    def __init__(self, job: VariantJob, lock: threading.Lock):
        self.job = job
        self.started = time.perf_counter()
        self.process = subprocess.Popen(list(job.command), stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True,
                                        env=child_environment())
        self.relay = threading.Thread(target=relay_lines,
                                      args=(job.label, self.process.stdout, lock), daemon=True)
        self.relay.start()

    def exit_code(self) -> Optional[int]:
        """The exit code once the child has ended and its output is relayed, else None."""
        code = self.process.poll()
        if code is None:
            return None
        self.relay.join()
        return code


def run_variant_jobs(jobs: Sequence[VariantJob], at_once: int) -> List[StageTime]:
    """Run ``jobs`` in order, at most ``at_once`` at a time; returns their stage times (in
    the jobs' order).

    After a failure no further job starts; those running finish (their stages are kept),
    then :class:`VariantJobFailed` names every failed run.
    """
    lock = threading.Lock()
    waiting, running, failed = list(jobs), [], []
    try:
        while waiting or running:
            while waiting and not failed and len(running) < at_once:
                job = waiting.pop(0)
                with lock:
                    print_log(f'[{job.label}] started ({len(jobs) - len(waiting)} of '
                              f'{len(jobs)} runs, {at_once} at a time)', logger='current')
                running.append(RunningJob(job, lock))
            for child in list(running):
                code = child.exit_code()
                if code is None:
                    continue
                running.remove(child)
                seconds = time.perf_counter() - child.started
                if code:
                    failed.append(f'{child.job.label} (exit code {code})')
                    continue
                with lock:
                    print_log(f'[{child.job.label}] finished in {seconds:.1f} s',
                              logger='current')
            if running:
                time.sleep(POLL_SECONDS)
            elif failed:
                break
    finally:
        for child in running:  # interrupted (Ctrl-C, an error here): leave no orphans
            child.process.terminate()
            child.process.wait()
    if failed:
        raise VariantJobFailed(
            f'{", ".join(failed)} failed: its output above, each line prefixed with its '
            f'label, ends with the error; every stage finished so far is kept, so the same '
            f'command goes on from there once the cause is fixed')
    return [time for job in jobs for time in load_stage_times(job.times_file)]


def job_command(base: Sequence[str], variant: str, seed: int, times_file: Path) -> List[str]:
    """The child's command line: ``base`` (``harness/run.py CONFIG`` and the options every
    run shares) with this run's variant, seed and stage-times file."""
    return [sys.executable, *base, '--variant', variant, '--seed', str(seed),
            '--variant-job', str(times_file)]
