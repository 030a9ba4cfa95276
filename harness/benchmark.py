"""Run a small deterministic benchmark experiment and flatten its scores (for the CI gate).

The benchmark is an ordinary experiment config (``configs/ci_benchmark.py``); its records
are flattened to ``{'<task>/<dataset>/<split>/<metric>': score}`` (for several variants or
seeds: ``<variant>/seed<seed>/...`` prefixes). It runs in a scratch work dir and never
touches the committed leaderboards.

Scores depend on the CPU thread count (a float sum split over more threads adds in another
order; a few such differences in training change the model), so a benchmark run fixes it:
``threads`` is recorded with each baseline and applied by :func:`fixed_threads`.
"""
import contextlib
import os
import tempfile
from pathlib import Path
from typing import Dict, Iterable, Iterator, Optional

import torch

from harness.config import load_config
from harness.experiment import run_experiment
from harness.results import ResultRecord, collect_records

# Environment variables that set the thread count of OpenMP/MKL in processes started later.
THREAD_VARIABLES = ('OMP_NUM_THREADS', 'MKL_NUM_THREADS')


def flatten_scores(records: Iterable[ResultRecord], rising_only: bool = False
                   ) -> Dict[str, float]:
    """``{'task/dataset/split/metric': value}``; prefixed by variant/seed when several exist.

    ``rising_only`` leaves out the metrics whose evaluator declared lower values better
    (median ranks): a gate that fails on drops cannot guard them.
    """
    records = list(records)
    several = len({(r.variant, r.seed) for r in records}) > 1
    scores = {}
    for record in records:
        prefix = f'{record.variant}/seed{record.seed}/' if several else ''
        for metric, value in record.metrics.items():
            falls_when_better = record.higher_is_better.get(metric, True) is False
            if isinstance(value, (int, float)) and not (rising_only and falls_when_better):
                scores[f'{prefix}{record.task}/{record.dataset}/{record.split}/{metric}'] = value
    return scores


@contextlib.contextmanager
def fixed_threads(threads: int) -> Iterator[None]:
    """Inside, torch computes with ``threads`` CPU threads and the OpenMP/MKL variables say
    the same to any process started (whatever the machine or its environment says);
    the previous settings are restored after."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f'threads={threads!r}: the benchmark thread count must be a whole '
                         f'number >= 1')
    previous = torch.get_num_threads()
    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update({name: str(threads) for name in THREAD_VARIABLES})
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_benchmark(config_path: str, work_dir: Optional[Path] = None,
                  cfg_options: Optional[dict] = None, threads: Optional[int] = None,
                  rising_only: bool = False) -> Dict[str, float]:
    """Run the experiment ``config_path`` (all variants, seeds, stages) and return its scores,
    computed with ``threads`` CPU threads (None: the process's own count); ``rising_only``
    as :func:`flatten_scores`."""
    cfg = load_config(config_path, cfg_options)
    with tempfile.TemporaryDirectory(prefix='blip_benchmark_') as scratch, \
            (fixed_threads(threads) if threads is not None else contextlib.nullcontext()):
        root = Path(work_dir) if work_dir else Path(scratch)
        run_experiment(cfg, root / 'work', leaderboard_dir=root / 'leaderboards')
        return flatten_scores(collect_records([root / 'work']), rising_only=rising_only)
