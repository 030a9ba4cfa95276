"""Records -> the numbers a board shows: latest run per seed, values per variant, units."""
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from harness.results import ResultRecord

MetricKey = tuple[str, str, str, str]  # (task, dataset, split, metric)


def _seed_key(record: ResultRecord) -> tuple:
    """What one board cell's seed stands for: (variant, task, dataset, split, seed)."""
    return record.variant, record.task, record.dataset, record.split, record.seed


def _run_identity(record: ResultRecord) -> tuple:
    """What tells runs apart: their config (checkpoint paths included) and item limit."""
    return record.config_hash, record.extra.get('limit')


def latest_per_seed(records: Iterable[ResultRecord]) -> list[ResultRecord]:
    """One record per (variant, task, dataset, split, seed): the latest by timestamp, so a
    re-run replaces rather than duplicates a seed (see :func:`board_warnings` for runs
    that differ)."""
    latest: dict[tuple, ResultRecord] = {}
    for record in records:
        key = _seed_key(record)
        if key not in latest or record.timestamp >= latest[key].timestamp:
            latest[key] = record
    return list(latest.values())


def board_warnings(records: Iterable[ResultRecord]) -> list[str]:
    """What a reader of the board must know about its records, one sentence each.

    * collisions: records of one (variant, task, dataset, split, seed) from different runs
      (another config or checkpoint, or another ``--limit``), of which the board shows only
      the latest;
    * smoke runs: shown records that evaluated only the first N items (``--limit N``).
    """
    records = list(records)
    groups: dict[tuple, list[ResultRecord]] = defaultdict(list)
    for record in records:
        groups[_seed_key(record)].append(record)
    warnings = []
    for (variant, task, dataset, split, seed), group in groups.items():
        runs = {_run_identity(record) for record in group}
        if len(runs) > 1:
            shown = max(group, key=lambda record: record.timestamp)
            warnings.append(
                f'{len(group)} records of variant {variant!r} on {task}/{dataset}/{split} '
                f'seed {seed} come from {len(runs)} different runs (config hashes '
                f'{", ".join(sorted({r.config_hash for r in group}))}); only the latest '
                f'({shown.timestamp}, config hash {shown.config_hash}) is shown. Give each '
                f'checkpoint or run its own variant name (--name) or work dir.')
    limited = defaultdict(set)
    for record in latest_per_seed(records):
        if record.extra.get('limit') is not None:
            limited[record.extra['limit']].add(f'{record.variant} ({record.task}/'
                                               f'{record.dataset}/{record.split})')
    for limit, where in sorted(limited.items()):
        warnings.append(f'Smoke run: {", ".join(sorted(where))} evaluated only the first '
                        f'{limit} items (--limit {limit}); these are not full-dataset scores.')
    return warnings


def records_by_variant(records: Iterable[ResultRecord], key: MetricKey
                       ) -> dict[str, list[ResultRecord]]:
    """Records holding the metric ``key``, grouped by variant."""
    task, dataset, split, metric = key
    grouped = defaultdict(list)
    for record in records:
        if (record.task, record.dataset, record.split) == (task, dataset, split) \
                and record.metrics.get(metric) is not None:
            grouped[record.variant].append(record)
    return grouped


def seed_values(records: Sequence[ResultRecord], metric: str) -> list[float]:
    """The metric's value in each record (one per seed)."""
    return [float(record.metrics[metric]) for record in records]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def format_mean_std(values: Sequence[float]) -> str:
    """``12.34`` for one seed, ``12.34 ± 0.56 (n=3)`` for several."""
    mean, std = mean_std(values)
    if len(values) == 1:
        return f'{mean:.2f}'
    return f'{mean:.2f} ± {std:.2f} (n={len(values)})'


def metric_unit(key: MetricKey, records: Iterable[ResultRecord],
                overrides: Mapping[str, str]) -> str:
    """The unit of a metric: the spec's ``units`` override, else the unit its evaluator
    wrote into ``record.units``, else none (old records carry no units).

    Records of one metric that declare different units are an error whose fix is an
    override in the spec.
    """
    if key[3] in overrides:
        return overrides[key[3]]
    units = sorted({record.units.get(key[3]) or '' for group in
                    records_by_variant(records, key).values() for record in group} - {''})
    if len(units) > 1:
        raise ValueError(f'metric {key}: the records declare different units {units}; set '
                         f'leaderboard.units = {{{key[3]!r}: ...}} in the experiment config')
    return units[0] if units else ''


def metric_header(metric: str, unit: str) -> str:
    """Column header with its unit, e.g. ``CIDEr (×100)``; the bare name without one."""
    return f'{metric} ({unit})' if unit else metric


def describe_counts(counts: Mapping[str, int]) -> str:
    """What an evaluation covered, e.g. ``200 images, 1000 texts``."""
    return ', '.join(f'{number} {what}' for what, number in counts.items())
