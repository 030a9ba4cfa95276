"""Run a small deterministic benchmark experiment and flatten its scores (for the CI gate).

The benchmark is an ordinary experiment config (``configs/ci_benchmark.py``); its records
are flattened to ``{'<task>/<dataset>/<split>/<metric>': score}`` (for several variants or
seeds: ``<variant>/seed<seed>/...`` prefixes). It runs in a scratch work dir and never
touches the committed leaderboards.
"""
import tempfile
from pathlib import Path
from typing import Dict, Iterable, Optional

from harness.config import load_config
from harness.experiment import run_experiment
from harness.results import ResultRecord, collect_records


def flatten_scores(records: Iterable[ResultRecord]) -> Dict[str, float]:
    """``{'task/dataset/split/metric': value}``; prefixed by variant/seed when several exist."""
    records = list(records)
    several = len({(r.variant, r.seed) for r in records}) > 1
    scores = {}
    for record in records:
        prefix = f'{record.variant}/seed{record.seed}/' if several else ''
        for metric, value in record.metrics.items():
            if isinstance(value, (int, float)):
                scores[f'{prefix}{record.task}/{record.dataset}/{record.split}/{metric}'] = value
    return scores


def run_benchmark(config_path: str, work_dir: Optional[Path] = None,
                  cfg_options: Optional[dict] = None) -> Dict[str, float]:
    """Run the experiment ``config_path`` (all variants, seeds, stages) and return its scores."""
    cfg = load_config(config_path, cfg_options)
    with tempfile.TemporaryDirectory(prefix='blip_benchmark_') as scratch:
        root = Path(work_dir) if work_dir else Path(scratch)
        run_experiment(cfg, root / 'work', leaderboard_dir=root / 'leaderboards')
        return flatten_scores(collect_records([root / 'work']))
