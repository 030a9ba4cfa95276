"""The numbers each panel of a board's plot shows, apart from drawing them (testable
without matplotlib).

A panel is one primary metric with a value for at least two variants; a metric only one
variant has stays in the board's tables (a single bar compares nothing). Its error bars,
one kind per panel so a reader never compares unlike bars:

* ± the std over seeds, when every variant has at least 2 seeds;
* else the 95% bootstrap CI of the mean per-sample score (:func:`bootstrap_mean_interval`),
  when every variant stores per-sample scores (``record.extra['per_sample'][metric]``);
* else none.
"""
import dataclasses
from collections.abc import Sequence

from harness.boards.aggregate import (MetricKey, mean_std, metric_unit, records_by_variant,
                                      seed_values)
from harness.boards.chance import chance_level
from harness.boards.reference import RankAgreement, paper_table, paper_values, rank_agreement
from harness.boards.spec import BoardSpec
from harness.boards.stats import bootstrap_mean_interval, per_sample_means
from harness.results import ResultRecord

NO_ERROR_BARS = 'no error bars (they need ≥2 seeds or per-sample scores per variant)'


@dataclasses.dataclass
class Panel:
    """One plotted metric.

    Attributes:
        key: the ``(task, dataset, split, metric)`` shown.
        unit: the metric's unit on our runs.
        variants: the variants with a value, in board order.
        means: our mean over seeds per variant.
        errors: ``(below, above)`` error-bar lengths per variant, or None.
        error_kind: what the error bars are, for the panel title.
        chance: the chance level in ``unit`` (see :mod:`.chance`), or None.
        paper: the paper's value per variant (a subset of ``variants``), paper's scale.
        paper_unit: the unit of the paper's values.
        paper_dataset: where the paper scored them.
        agreement: Kendall's τ of our ordering against the paper's, or None.
    """

    key: MetricKey
    unit: str
    variants: list[str]
    means: list[float]
    errors: list[tuple[float, float]] | None
    error_kind: str
    chance: float | None
    paper: dict[str, float]
    paper_unit: str
    paper_dataset: str
    agreement: RankAgreement | None


def _span(numbers: Sequence[int]) -> str:
    """``5`` when all numbers are equal, else ``3–5``."""
    return str(min(numbers)) if min(numbers) == max(numbers) else f'{min(numbers)}–{max(numbers)}'


def error_bars(by_variant: dict[str, list[ResultRecord]], variants: Sequence[str],
               metric: str) -> tuple[list[tuple[float, float]] | None, str]:
    """``(below, above)`` lengths per variant and what they are (module docstring)."""
    values = [seed_values(by_variant[v], metric) for v in variants]
    if min(map(len, values)) >= 2:
        stds = [mean_std(seeds)[1] for seeds in values]
        return [(std, std) for std in stds], f'± std over {_span([len(v) for v in values])} seeds'
    samples = [per_sample_means(by_variant[v], metric) for v in variants]
    if all(s is not None and len(s) >= 2 for s in samples):
        errors = []
        for seeds, scores in zip(values, samples):
            mean = mean_std(seeds)[0]
            low, high = bootstrap_mean_interval(scores)
            errors.append((max(0.0, mean - low), max(0.0, high - mean)))
        return errors, f'95% bootstrap CI over {_span([len(s) for s in samples])} samples'
    return None, NO_ERROR_BARS


def board_panels(spec: BoardSpec, records: Sequence[ResultRecord]
                 ) -> tuple[list[Panel], list[MetricKey]]:
    """The panels to plot and the primary metrics left to the tables (one variant only)."""
    table = paper_table(spec)
    panels, table_only = [], []
    for key in spec.primary_metrics:
        by_variant = records_by_variant(records, key)
        variants = [v for v in spec.variant_order if v in by_variant]
        if len(variants) == 1:
            table_only.append(key)
        if len(variants) < 2:
            continue
        unit = metric_unit(key, records, spec.units)
        errors, error_kind = error_bars(by_variant, variants, key[3])
        paper = {v: value for v, value in paper_values(table, key).items() if v in variants}
        panels.append(Panel(
            key=key, unit=unit, variants=variants,
            means=[mean_std(seed_values(by_variant[v], key[3]))[0] for v in variants],
            errors=errors, error_kind=error_kind,
            chance=chance_level(key[3], [r for v in variants for r in by_variant[v]], unit),
            paper=paper, paper_unit=table.units.get(key[3], '') if paper else '',
            paper_dataset=table.dataset if paper else '',
            agreement=rank_agreement(key, spec, records, table)))
    return panels, table_only
