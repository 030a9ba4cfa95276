"""Significance of the differences between a board's variants, Holm-corrected per board.

Each pair of variants is compared on each primary metric, two-sided:

* paired bootstrap, when every record of both variants stores per-sample scores
  (``record.extra['per_sample'][metric] = {sample_id: score}``): the mean per-sample
  difference is resampled over samples (numpy, fixed seed); the 95% percentile interval
  is reported, and the p-value is twice the smaller share of resampled means on either
  side of zero (each share smoothed as ``(count + 1) / (resamples + 1)``);
* otherwise, with at least 2 seeds per variant, Welch's t-test over the seeds' values
  (``scipy.stats.ttest_ind(..., equal_var=False)``).

The p-values of all comparisons on one board, of both kinds, are adjusted together with
Holm's step-down method, which bounds the family-wise error rate at ``ALPHA``; a verdict
is "significant" when the adjusted p-value is below ``ALPHA``.
"""
import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from harness.boards.aggregate import MetricKey, mean_std, records_by_variant, seed_values
from harness.boards.spec import BoardSpec
from harness.results import ResultRecord

ALPHA = 0.05
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


def method_statement(comparisons: int) -> str:
    """The board's sentence on how its comparisons were tested and corrected."""
    return (f'Two-sided tests. Paired bootstrap ({BOOTSTRAP_RESAMPLES} resamples of the '
            f'samples, seed {BOOTSTRAP_SEED}) of the mean per-sample difference where both '
            'variants store per-sample scores: 95% percentile CI, p = twice the smaller share '
            'of resampled means on either side of 0; otherwise Welch\'s t-test over seeds '
            f'(`scipy.stats.ttest_ind`, `equal_var=False`). The p-values of all {comparisons} '
            f'comparisons on this board are Holm-adjusted together (family-wise error rate '
            f'{ALPHA}); the verdict uses the adjusted p.')


def welch_p_value(first: Sequence[float], second: Sequence[float]) -> float:
    """Two-sided p-value of Welch's t-test (unequal variances); needs >= 2 values each.

    Two constant samples have no spread to test against: p is 1 when their means are
    equal and 0 otherwise (SciPy would return NaN).
    """
    if np.var(first) == 0.0 and np.var(second) == 0.0:
        return 1.0 if mean_std(first)[0] == mean_std(second)[0] else 0.0
    from scipy import stats  # here, not at the top: only a board needs SciPy (0.7 s to import)
    return float(stats.ttest_ind(first, second, equal_var=False).pvalue)


class Bootstrap(NamedTuple):
    """A paired bootstrap: mean difference, its 95% CI, two-sided p, number of samples."""

    difference: float
    low: float
    high: float
    p_value: float
    samples: int


def _resampled_means(values: np.ndarray) -> np.ndarray:
    """``BOOTSTRAP_RESAMPLES`` means of ``values`` resampled with replacement (seeded)."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    indices = rng.integers(0, len(values), size=(BOOTSTRAP_RESAMPLES, len(values)))
    return values[indices].mean(axis=1)


def _percentile_interval(resampled: np.ndarray) -> tuple[float, float]:
    """The central ``1 - ALPHA`` percentile interval of resampled statistics."""
    low, high = np.percentile(resampled, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)])
    return float(low), float(high)


def bootstrap_mean_interval(scores: Mapping[str, float]) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean per-sample score (same resamples and
    seed as :func:`paired_bootstrap`): a single-seed board's error bar."""
    return _percentile_interval(_resampled_means(np.array([scores[s] for s in sorted(scores)])))


def paired_bootstrap(first: Mapping[str, float], second: Mapping[str, float]) -> Bootstrap:
    """Paired bootstrap of the mean per-sample difference (first − second) over the samples
    both hold (see the module docstring for the p-value)."""
    samples = sorted(set(first) & set(second))
    differences = np.array([first[s] - second[s] for s in samples])
    resampled = _resampled_means(differences)
    low, high = _percentile_interval(resampled)
    shares = [(np.count_nonzero(side) + 1) / (BOOTSTRAP_RESAMPLES + 1)
              for side in (resampled <= 0.0, resampled >= 0.0)]
    return Bootstrap(float(differences.mean()), low, high,
                     min(1.0, 2 * min(shares)), len(samples))


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values, in the input order.

    The i-th smallest p (1-based) is multiplied by ``m - i + 1``, capped at 1 and made
    non-decreasing along the sorted order; rejecting where the adjusted p < alpha keeps
    the family-wise error rate at alpha.
    """
    order = sorted(range(len(p_values)), key=lambda index: p_values[index])
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


@dataclasses.dataclass
class Comparison:
    """The outcome of comparing two variants on one metric.

    ``interval`` is the bootstrap's 95% CI (None for Welch); ``adjusted_p`` is the
    Holm-adjusted p-value over the board's comparisons.
    """

    key: MetricKey
    first: str
    second: str
    difference: float
    method: str
    interval: tuple[float, float] | None
    p_value: float
    adjusted_p: float = float('nan')

    @property
    def significant(self) -> bool:
        """Whether the Holm-adjusted p-value is below ``ALPHA``."""
        return self.adjusted_p < ALPHA


def per_sample_means(records: Sequence[ResultRecord], metric: str,
                     field: str = 'per_sample') -> dict[str, float] | None:
    """Per-sample scores averaged over seeds (samples present in every seed), or None when
    some record lacks ``extra[field][metric]`` (or there are no records); ``field`` is
    ``'per_sample'`` (the model's) or ``'baseline_per_sample'`` (a task's baseline's)."""
    tables = [record.extra.get(field, {}).get(metric) for record in records]
    if not tables or any(not isinstance(table, Mapping) for table in tables):
        return None
    common = set.intersection(*(set(table) for table in tables))
    return {sample: sum(float(table[sample]) for table in tables) / len(tables)
            for sample in common}


def compare_variants(key: MetricKey, first: str, first_records: Sequence[ResultRecord],
                     second: str, second_records: Sequence[ResultRecord]) -> Comparison | None:
    """Paired bootstrap when both variants store per-sample scores, else Welch over seeds;
    None when neither applies (fewer than 2 seeds). The adjusted p is left unset."""
    metric = key[3]
    first_samples = per_sample_means(first_records, metric)
    second_samples = per_sample_means(second_records, metric)
    if first_samples and second_samples and len(set(first_samples) & set(second_samples)) >= 2:
        result = paired_bootstrap(first_samples, second_samples)
        return Comparison(key, first, second, result.difference,
                          f'paired bootstrap (n={result.samples} samples)',
                          (result.low, result.high), result.p_value)
    first_values = seed_values(first_records, metric)
    second_values = seed_values(second_records, metric)
    if min(len(first_values), len(second_values)) < 2:
        return None
    difference = mean_std(first_values)[0] - mean_std(second_values)[0]
    method = f'Welch t-test (seeds {len(first_values)} vs {len(second_values)})'
    return Comparison(key, first, second, difference, method, None,
                      welch_p_value(first_values, second_values))


def board_comparisons(spec: BoardSpec, records: Sequence[ResultRecord]) -> list[Comparison]:
    """Every testable pair of variants (the spec's ``comparisons``, else all pairs) on every
    primary metric, Holm-adjusted together."""
    comparisons = []
    for key in spec.primary_metrics:
        by_variant = records_by_variant(records, key)
        present = [v for v in spec.variant_order if v in by_variant]
        pairs = itertools.combinations(present, 2) if spec.comparisons is None else \
            [(a, b) for a, b in spec.comparisons if a in by_variant and b in by_variant]
        for first, second in pairs:
            comparison = compare_variants(key, first, by_variant[first], second,
                                          by_variant[second])
            if comparison is not None:
                comparisons.append(comparison)
    for comparison, adjusted in zip(comparisons,
                                    holm_adjust([c.p_value for c in comparisons])):
        comparison.adjusted_p = adjusted
    return comparisons
