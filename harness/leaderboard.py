"""Leaderboard writer: results records -> Markdown board + PNG plot + index.

Run as ``python -m harness.leaderboard --experiment NAME --results DIR [DIR ...]
--out leaderboards/``. The board's layout comes from the ``leaderboard`` dict of the
experiment config (see ``BoardSpec``); an experiment without one gets a generic board of
every metric its records hold. Our rows are aggregated over seeds (mean ± std); the paper's
rows, where the spec names a paper table, follow in a separate, labelled table.

Significance: with per-sample scores in ``record.extra['per_sample'][metric]``
(``{sample_id: score}``) variants are compared by a paired bootstrap of the mean
per-sample difference (95% percentile CI, fixed seed); otherwise, with >= 2 seeds per
variant, by Welch's t-test over seeds (two-sided). alpha = 0.05 per comparison, no
multiple-comparison correction.
"""
import argparse
import dataclasses
import datetime
import io
import itertools
import math
import re
import shlex
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.paper_references import PAPER_HEADLINE, PaperTable, paper_table
from harness.core.files import atomic_write_bytes, atomic_write_text
from harness.results import (ResultRecord,
                             collect_records, git_revision)

MetricKey = tuple[str, str, str, str]  # (task, dataset, split, metric)

ALPHA = 0.05
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
INDEX_FILENAME = 'README.md'
SPEC_FIELDS = ('title', 'description', 'primary_metrics', 'paper_reference', 'variant_order',
               'units')
_SCALED_BY_100 = ('BLEU', 'Bleu', 'METEOR', 'ROUGE', 'CIDEr', 'SPICE')
_PERCENT_MARKERS = ('R@', 'r_mean', 'mean_recall', 'accuracy', 'acc', 'precision', 'recall',
                    'noise')


# ---------------------------------------------------------------------------- board spec

@dataclasses.dataclass
class BoardSpec:
    """What a board shows; the ``leaderboard`` dict of an experiment config.

    Fields (all optional):
        title: board title (default: the experiment name).
        description: one line under the title, also used by the index.
        primary_metrics: list of ``(task, dataset, split, metric)``: the table columns,
            the plotted bars and the significance tests (default: every metric found).
        paper_reference: a table of ``harness.paper_references.PAPER_TABLES`` (e.g.
            ``'sharing'``) or ``'headline'``; its rows are shown as reference.
        variant_order: row order; variants found but not listed follow, sorted.
        units: metric name -> unit label, overriding the defaults (``×100`` for caption
            metrics, ``%`` for recalls and accuracies).
    """

    title: str
    description: str
    primary_metrics: list[MetricKey]
    paper_reference: str | None
    variant_order: list[str]
    units: dict[str, str]

    @classmethod
    def from_config(cls, experiment: str, spec: Mapping[str, Any] | None,
                    records: Sequence[ResultRecord]) -> 'BoardSpec':
        """Validates a config's ``leaderboard`` dict and fills defaults from the records."""
        spec = dict(spec or {})
        unknown = sorted(set(spec) - set(SPEC_FIELDS))
        if unknown:
            raise ValueError(f'leaderboard spec of experiment {experiment!r}: unknown field(s) '
                             f'{unknown}; allowed fields are {list(SPEC_FIELDS)}')
        primary = [_metric_key(item, experiment) for item in spec.get('primary_metrics') or []]
        if not primary:
            primary = sorted({(r.task, r.dataset, r.split, metric)
                              for r in records for metric in r.metrics})
        if not primary:
            raise ValueError(f'experiment {experiment!r}: its records hold no metrics and its '
                             'leaderboard spec names no primary_metrics; nothing to show')
        listed = list(spec.get('variant_order') or [])
        found = sorted({record.variant for record in records} - set(listed))
        default_description = (f'Experiment `{experiment}`: {len(listed + found)} variant(s) '
                               f'on {", ".join(sorted({f"{k[0]}/{k[1]}" for k in primary}))}.')
        return cls(title=spec.get('title') or experiment,
                   description=spec.get('description') or default_description,
                   primary_metrics=primary,
                   paper_reference=spec.get('paper_reference'),
                   variant_order=listed + found,
                   units=dict(spec.get('units') or {}))


def _metric_key(item: Any, experiment: str) -> MetricKey:
    """A primary-metric entry as a 4-tuple of strings, or an error saying the format."""
    if isinstance(item, (list, tuple)) and len(item) == 4 and all(isinstance(p, str) for p in item):
        return tuple(item)
    raise ValueError(f'leaderboard.primary_metrics of experiment {experiment!r}: entry {item!r} '
                     "must be a (task, dataset, split, metric) tuple of strings, e.g. "
                     "('caption', 'toyworld_coco', 'test', 'CIDEr')")


def metric_unit(metric: str, overrides: Mapping[str, str]) -> str:
    """Unit label of a metric as records store it: ``×100``, ``%`` or ``''``."""
    if metric in overrides:
        return overrides[metric]
    if metric.startswith(_SCALED_BY_100):
        return '×100'
    if any(marker in metric for marker in _PERCENT_MARKERS):
        return '%'
    return ''


def metric_header(metric: str, overrides: Mapping[str, str]) -> str:
    """Column header with its unit, e.g. ``CIDEr (×100)``."""
    unit = metric_unit(metric, overrides)
    return f'{metric} ({unit})' if unit else metric


# ---------------------------------------------------------------------------- aggregation

def latest_per_seed(records: Iterable[ResultRecord]) -> list[ResultRecord]:
    """One record per (variant, task, dataset, split, seed): the latest by timestamp, so a
    re-run replaces rather than duplicates a seed."""
    latest: dict[tuple, ResultRecord] = {}
    for record in records:
        key = (record.variant, record.task, record.dataset, record.split, record.seed)
        if key not in latest or record.timestamp >= latest[key].timestamp:
            latest[key] = record
    return list(latest.values())


def _records_by_variant(records: Iterable[ResultRecord], key: MetricKey
                        ) -> dict[str, list[ResultRecord]]:
    """Records holding the metric ``key``, grouped by variant."""
    task, dataset, split, metric = key
    grouped = defaultdict(list)
    for record in records:
        if (record.task, record.dataset, record.split) == (task, dataset, split) \
                and record.metrics.get(metric) is not None:
            grouped[record.variant].append(record)
    return grouped


def _seed_values(records: Sequence[ResultRecord], metric: str) -> list[float]:
    """The metric's value in each record (one per seed)."""
    return [float(record.metrics[metric]) for record in records]


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def format_mean_std(values: Sequence[float]) -> str:
    """``12.34`` for one seed, ``12.34 ± 0.56 (n=3)`` for several."""
    mean, std = _mean_std(values)
    if len(values) == 1:
        return f'{mean:.2f}'
    return f'{mean:.2f} ± {std:.2f} (n={len(values)})'


# ---------------------------------------------------------------------------- significance

def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz's method)."""
    tiny, epsilon = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 500):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1.0) < epsilon:
            break
    return fraction


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the CDF of a Beta(a, b) distribution at ``x``."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(a * math.log(x) + b * math.log1p(-x) - _log_beta(a, b))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_continued_fraction(a, b, x) / a
    return 1.0 - front * _beta_continued_fraction(b, a, 1.0 - x) / b


def student_t_two_sided_p(t: float, dof: float) -> float:
    """P(|T| >= |t|) for Student's t with ``dof`` degrees of freedom."""
    return regularized_incomplete_beta(dof / 2.0, 0.5, dof / (dof + t * t))


def welch_t_test(first: Sequence[float], second: Sequence[float]) -> float:
    """Two-sided p-value of Welch's t-test (unequal variances); needs >= 2 values each."""
    mean_1, std_1 = _mean_std(first)
    mean_2, std_2 = _mean_std(second)
    var_1, var_2 = std_1 ** 2 / len(first), std_2 ** 2 / len(second)
    if var_1 + var_2 == 0.0:
        return 1.0 if mean_1 == mean_2 else 0.0
    t = (mean_1 - mean_2) / math.sqrt(var_1 + var_2)
    dof = (var_1 + var_2) ** 2 / (var_1 ** 2 / (len(first) - 1) + var_2 ** 2 / (len(second) - 1))
    return student_t_two_sided_p(t, dof)


def _per_sample_means(records: Sequence[ResultRecord], metric: str) -> dict[str, float] | None:
    """Per-sample scores averaged over seeds (samples present in every seed), or None when
    some record lacks ``extra['per_sample'][metric]``."""
    tables = [record.extra.get('per_sample', {}).get(metric) for record in records]
    if not tables or any(not isinstance(table, Mapping) for table in tables):
        return None
    common = set.intersection(*(set(table) for table in tables))
    return {sample: sum(float(table[sample]) for table in tables) / len(tables)
            for sample in common}


def paired_bootstrap_ci(first: Mapping[str, float], second: Mapping[str, float]
                        ) -> tuple[float, float, float, int]:
    """Mean per-sample difference (first − second) and its 95% bootstrap CI over the
    samples both hold; returns ``(difference, low, high, n_samples)``."""
    samples = sorted(set(first) & set(second))
    differences = np.array([first[s] - second[s] for s in samples])
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    indices = rng.integers(0, len(samples), size=(BOOTSTRAP_RESAMPLES, len(samples)))
    resampled = differences[indices].mean(axis=1)
    low, high = np.percentile(resampled, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)])
    return float(differences.mean()), float(low), float(high), len(samples)


@dataclasses.dataclass
class Comparison:
    """The outcome of comparing two variants on one metric."""

    key: MetricKey
    first: str
    second: str
    difference: float
    method: str
    evidence: str
    significant: bool


def compare_variants(key: MetricKey, first: str, first_records: Sequence[ResultRecord],
                     second: str, second_records: Sequence[ResultRecord]) -> Comparison | None:
    """Paired bootstrap when both variants store per-sample scores, else Welch over seeds;
    None when neither applies (fewer than 2 seeds)."""
    metric = key[3]
    first_samples = _per_sample_means(first_records, metric)
    second_samples = _per_sample_means(second_records, metric)
    if first_samples and second_samples and len(set(first_samples) & set(second_samples)) >= 2:
        difference, low, high, n = paired_bootstrap_ci(first_samples, second_samples)
        return Comparison(key, first, second, difference, f'paired bootstrap (n={n} samples)',
                          f'95% CI [{low:+.2f}, {high:+.2f}]', not low <= 0.0 <= high)
    first_values = _seed_values(first_records, metric)
    second_values = _seed_values(second_records, metric)
    if min(len(first_values), len(second_values)) < 2:
        return None
    p_value = welch_t_test(first_values, second_values)
    difference = _mean_std(first_values)[0] - _mean_std(second_values)[0]
    method = f'Welch t-test (seeds {len(first_values)} vs {len(second_values)})'
    return Comparison(key, first, second, difference, method, f'p = {p_value:.3g}',
                      p_value < ALPHA)


# ---------------------------------------------------------------------------- markdown

def _cell(value: Any) -> str:
    """A Markdown table cell (pipes escaped)."""
    return str(value).replace('|', '\\|')


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """Markdown table lines."""
    lines = ['| ' + ' | '.join(map(_cell, header)) + ' |',
             '|' + '|'.join('---' for _ in header) + '|']
    lines += ['| ' + ' | '.join(map(_cell, row)) + ' |' for row in rows]
    return lines


def _format_reference(value: float | None) -> str:
    """A paper number as the paper prints it (one or two decimals), or an em dash."""
    if value is None:
        return '—'
    text = f'{value:.2f}'
    return text[:-1] if text.endswith('0') else text


def _groups(spec: BoardSpec) -> dict[tuple[str, str, str], list[MetricKey]]:
    """Primary metrics grouped by (task, dataset, split), in spec order."""
    groups: dict[tuple[str, str, str], list[MetricKey]] = {}
    for key in spec.primary_metrics:
        groups.setdefault(key[:3], []).append(key)
    return groups


def _our_table(group: tuple[str, str, str], keys: Sequence[MetricKey], spec: BoardSpec,
               records: Sequence[ResultRecord]) -> list[str]:
    """Our rows for one (task, dataset, split): params, GFLOPs and each metric per variant."""
    task, dataset, split = group
    in_group = [r for r in records if (r.task, r.dataset, r.split) == group]
    show_flops = any(r.flops is not None for r in in_group)
    header = ['Variant', 'Params (M)'] + (['GFLOPs / sample'] if show_flops else [])
    header += [metric_header(key[3], spec.units) for key in keys]
    rows = []
    for variant in spec.variant_order:
        mine = [r for r in in_group if r.variant == variant]
        row = [variant, f'{max(r.params for r in mine) / 1e6:.1f}' if mine else '—']
        if show_flops:
            flops = [r.flops for r in mine if r.flops is not None]
            row.append(f'{_mean_std(flops)[0]:.2f}' if flops else '—')
        for key in keys:
            values = _seed_values(_records_by_variant(mine, key).get(variant, []), key[3])
            row.append(format_mean_std(values) if values else '—')
        rows.append(row)
    return [f'### Our runs — {task} · `{dataset}` · split `{split}`', '',
            *_table(header, rows), '']


def _paper_section(table: PaperTable, spec: BoardSpec) -> list[str]:
    """The paper's rows, separated and labelled, plus the columns we have no match for."""
    metrics = list(dict.fromkeys(m for row in table.rows for m in row.metrics))
    optional = [('Params (M)', 'params_m'), ('Noise ratio (%)', 'noise_ratio'),
                ('Notes', 'notes')]
    optional = [(label, attr) for label, attr in optional
                if any(getattr(row, attr) not in (None, '') for row in table.rows)]
    header = ['Variant', "Paper's label", *(label for label, _ in optional),
              *(metric_header(m, spec.units) for m in metrics), 'Source']
    rows = []
    for row in table.rows:
        cells = [row.variant, row.paper_label]
        for _, attr in optional:
            value = getattr(row, attr)
            cells.append(value if isinstance(value, str) else _format_reference(value))
        cells += [_format_reference(row.metrics.get(m)) for m in metrics]
        rows.append([*cells, row.source])
    our_metric_names = {key[3] for key in spec.primary_metrics}
    unmatched = [m for m in metrics if m not in our_metric_names]
    unmatched += [label for label, attr in optional if attr != 'params_m']
    our_datasets = sorted({key[1] for key in spec.primary_metrics})
    lines = ['## Paper reference rows — NOT our runs', '',
             f'{table.title}: BLIP paper numbers, source **{table.rows[0].source}**, '
             f'{table.task} on `{table.dataset}` split `{table.split}`. Our runs above use '
             f'{", ".join(f"`{d}`" for d in our_datasets)}, so compare the ordering of '
             'variants, not absolute values.', '', *_table(header, rows), '']
    if unmatched:
        lines += ['Paper columns with no counterpart in our runs: '
                  + ', '.join(unmatched) + '.', '']
    missing_variants = [row.variant for row in table.rows if row.variant not in spec.variant_order]
    if missing_variants:
        lines += ['Paper variants we did not run: ' + ', '.join(missing_variants) + '.', '']
    return lines


def _headline_section(spec: BoardSpec) -> list[str]:
    """The paper's headline numbers as a labelled reference table."""
    rows = [[h.task, f'`{h.dataset}`', h.split, metric_header(h.metric, spec.units),
             _format_reference(h.value), h.model or '—', h.source] for h in PAPER_HEADLINE]
    return ['## Paper reference rows — NOT our runs', '',
            *_table(['Task', 'Dataset', 'Split', 'Metric', 'Value', 'Model', 'Source'], rows),
            '']


def _significance_section(spec: BoardSpec, records: Sequence[ResultRecord]) -> list[str]:
    """Pairwise comparisons of variants on every primary metric."""
    comparisons = []
    for key in spec.primary_metrics:
        by_variant = _records_by_variant(records, key)
        present = [v for v in spec.variant_order if v in by_variant]
        for first, second in itertools.combinations(present, 2):
            comparison = compare_variants(key, first, by_variant[first], second,
                                          by_variant[second])
            if comparison is not None:
                comparisons.append(comparison)
    lines = ['## Significance', '']
    if not comparisons:
        return lines + ['No test run: it needs two variants that each have at least 2 seeds '
                        "or per-sample scores in `extra['per_sample']`.", '']
    lines += [f'Difference = first − second. Paired bootstrap ({BOOTSTRAP_RESAMPLES} '
              f'resamples, seed {BOOTSTRAP_SEED}) where per-sample scores exist, else Welch '
              f't-test over seeds; alpha = {ALPHA} per comparison, no correction for the '
              f'{len(comparisons)} comparisons.', '']
    rows = [[f'{c.key[0]}/`{c.key[1]}`/{c.key[2]} {metric_header(c.key[3], spec.units)}',
             f'{c.first} vs {c.second}', f'{c.difference:+.2f}', c.method, c.evidence,
             '**significant**' if c.significant else 'not significant'] for c in comparisons]
    return lines + _table(['Metric', 'Pair', 'Difference', 'Test', 'CI / p-value', 'Verdict'],
                          rows) + ['']


def _provenance_section(records: Sequence[ResultRecord], spec: BoardSpec) -> list[str]:
    """Which runs the board was built from: seeds, config hashes, revisions, devices."""
    rows = []
    for variant in spec.variant_order:
        mine = [r for r in records if r.variant == variant]
        if not mine:
            rows.append([variant, '—', 'no results found', '—', '—'])
            continue
        rows.append([variant, ', '.join(map(str, sorted({r.seed for r in mine}))),
                     ', '.join(f'`{h}`' for h in sorted({r.config_hash for r in mine})),
                     ', '.join(f'`{g}`' for g in sorted({r.git_revision for r in mine})),
                     ', '.join(sorted({r.device or '?' for r in mine}))])
    return ['## Provenance', '',
            *_table(['Variant', 'Seeds', 'Config hash', 'Git revision', 'Device'], rows), '']


def _unavailable_section(records: Sequence[ResultRecord]) -> list[str]:
    """Metrics an evaluation could not compute, with the evaluator's reason (once each)."""
    reasons = sorted({(r.task, r.dataset, r.split, metric, reason) for r in records
                      for metric, reason in r.extra.get('unavailable', {}).items()})
    if not reasons:
        return []
    rows = [[task, f'`{dataset}`', split, metric, reason]
            for task, dataset, split, metric, reason in reasons]
    return ['## Metrics not computed', '',
            *_table(['Task', 'Dataset', 'Split', 'Metric', 'Reason'], rows), '']


def render_leaderboard(experiment: str, records: Sequence[ResultRecord],
                       board_spec: Mapping[str, Any] | None, *, command: str | None = None,
                       generated_at: datetime.datetime | None = None) -> str:
    """The Markdown board of one experiment.

    Args:
        experiment: experiment name; only records of this experiment are used, and the
            plot is linked as ``<experiment>.png``.
        records: results records (any experiments; re-runs of a seed keep the latest).
        board_spec: the config's ``leaderboard`` dict (see ``BoardSpec``); None for a
            generic board.
        command: the command line that generated the board, stated in the header.
        generated_at: generation time (default: now, UTC).
    """
    records = latest_per_seed(r for r in records if r.experiment == experiment)
    spec = BoardSpec.from_config(experiment, board_spec, records)
    generated_at = generated_at or datetime.datetime.now(datetime.timezone.utc)
    command = command or f'python -m harness.leaderboard --experiment {experiment} ...'
    lines = [f'# {spec.title}', '', spec.description, '',
             '> Auto-generated by `harness.leaderboard`; do not edit by hand.',
             f'> Command: `{command}`',
             f'> Generated {generated_at.isoformat(timespec="seconds")} at harness revision '
             f'`{git_revision()}` from {len(records)} record(s).', '',
             f'![{spec.title}: primary metrics per variant]({experiment}.png)', '']
    for group, keys in _groups(spec).items():
        lines += _our_table(group, keys, spec, records)
    lines += _unavailable_section(records)
    lines += _significance_section(spec, records)
    if spec.paper_reference == 'headline':
        lines += _headline_section(spec)
    elif spec.paper_reference:
        lines += _paper_section(paper_table(spec.paper_reference), spec)
    lines += _provenance_section(records, spec)
    return '\n'.join(lines)


# ---------------------------------------------------------------------------- plot

def render_plot(experiment: str, records: Sequence[ResultRecord],
                board_spec: Mapping[str, Any] | None) -> bytes:
    """PNG bytes: one bar chart per primary metric, bars per variant, std over seeds as
    error bars (none when every variant ran one seed: the Significance section then has
    bootstrap intervals)."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot

    records = latest_per_seed(r for r in records if r.experiment == experiment)
    spec = BoardSpec.from_config(experiment, board_spec, records)
    keys = spec.primary_metrics
    columns = min(3, len(keys))
    rows = math.ceil(len(keys) / columns)
    figure, axes = pyplot.subplots(rows, columns, figsize=(4.2 * columns, 3.6 * rows),
                                   squeeze=False)
    several_seeds = len({(r.variant, r.seed) for r in records}) > len({r.variant for r in records})
    for axis, key in zip(axes.flat, keys):
        by_variant = _records_by_variant(records, key)
        variants = [v for v in spec.variant_order if v in by_variant]
        stats = [_mean_std(_seed_values(by_variant[v], key[3])) for v in variants]
        axis.bar(range(len(variants)), [mean for mean, _ in stats],
                 yerr=[std for _, std in stats] if several_seeds else None, capsize=4,
                 color=pyplot.cm.tab10.colors[:len(variants)] or None)
        for position, (mean, std) in enumerate(stats):
            axis.annotate(f'{mean:.1f}', (position, mean + std), xytext=(0, 3),
                          textcoords='offset points', ha='center', fontsize=8)
        axis.set_xticks(range(len(variants)), variants, rotation=25, ha='right', fontsize=9)
        axis.set_title(f'{key[0]} · {key[1]} · {key[2]}', fontsize=9)
        axis.set_ylabel(metric_header(key[3], spec.units))
        axis.margins(y=0.15)
    for axis in list(axes.flat)[len(keys):]:
        axis.set_visible(False)
    note = 'error bars: std over seeds' if several_seeds else \
        'one seed; significance: see the board'
    figure.suptitle(f'{spec.title}  (our runs; {note})', fontsize=11)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format='png', dpi=110)
    pyplot.close(figure)
    return buffer.getvalue()


# ---------------------------------------------------------------------------- files

def _check_board_name(experiment: str) -> None:
    """Experiment names become file names; refuse ones that are not plain names."""
    if not re.fullmatch(r'[\w.-]+', experiment) or experiment.upper() == 'README':
        raise ValueError(f'experiment name {experiment!r} cannot name a board file; use '
                         'letters, digits, "_", "-" or "." (and not README)')


def write_leaderboard(experiment: str, records: Sequence[ResultRecord],
                      board_spec: Mapping[str, Any] | None, out_dir: str | Path,
                      command: str | None = None) -> Path:
    """Writes ``<out_dir>/<experiment>.md`` and ``.png`` atomically, refreshes the index,
    and returns the Markdown path."""
    _check_board_name(experiment)
    if not any(r.experiment == experiment for r in records):
        found = sorted({r.experiment for r in records})
        raise ValueError(f'no results records of experiment {experiment!r}; the results '
                         f'dirs hold experiments {found}')
    out_dir = Path(out_dir)
    board = out_dir / f'{experiment}.md'
    # Rendered before anything is written, so the revision it states is not marked dirty
    # by this very board's files.
    text = render_leaderboard(experiment, records, board_spec, command=command)
    atomic_write_bytes(out_dir / f'{experiment}.png', render_plot(experiment, records, board_spec))
    atomic_write_text(board, text)
    write_index(out_dir)
    return board


def _board_summary(path: Path) -> tuple[str, str]:
    """Title (first ``# `` line) and description (first plain paragraph line) of a board."""
    title, description = path.stem, ''
    for line in path.read_text(encoding='utf-8').splitlines():
        if line.startswith('# ') and title == path.stem:
            title = line[2:].strip()
        elif line.strip() and not line.startswith(('#', '>', '!', '|', '<!--')):
            description = line.strip()
            break
    return title, description


def write_index(out_dir: str | Path) -> Path:
    """Regenerates ``<out_dir>/README.md`` listing every board with title and description."""
    out_dir = Path(out_dir)
    boards = sorted(p for p in out_dir.glob('*.md') if p.name != INDEX_FILENAME)
    rows = []
    for board in boards:
        title, description = _board_summary(board)
        rows.append([f'[{title}]({board.name})', description])
    lines = ['# Leaderboards', '',
             'Auto-generated by `python -m harness.leaderboard`; do not edit by hand. Each '
             'board compares the variants of one experiment and, where the paper ran the same '
             'ablation, shows its numbers as separate reference rows.', '',
             *(_table(['Board', 'Description'], rows) if rows else ['No boards yet.']), '']
    index = out_dir / INDEX_FILENAME
    atomic_write_text(index, '\n'.join(lines))
    return index


# ---------------------------------------------------------------------------- CLI

def load_board_spec(config_path: Path) -> dict[str, Any]:
    """The ``leaderboard`` dict of an experiment config (empty when it has none)."""
    from mmengine.config import Config

    spec = Config.fromfile(str(config_path)).get('leaderboard') or {}
    return spec.to_dict() if hasattr(spec, 'to_dict') else dict(spec)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--experiment', required=True, help='experiment name in the records')
    parser.add_argument('--results', nargs='+', required=True,
                        help='work dirs searched recursively for results.jsonl')
    parser.add_argument('--out', default='leaderboards', help='board directory')
    parser.add_argument('--config', type=Path,
                        help='experiment config holding the board spec '
                             '(default: configs/<experiment>.py when it exists)')
    args = parser.parse_args(argv)
    config_path = args.config or Path('configs') / f'{args.experiment}.py'
    if args.config and not config_path.exists():
        parser.error(f'--config {config_path} does not exist')
    spec = load_board_spec(config_path) if config_path.exists() else None
    command = shlex.join(['python', '-m', 'harness.leaderboard',
                          *(sys.argv[1:] if argv is None else argv)])
    board = write_leaderboard(args.experiment, collect_records(args.results), spec, args.out,
                              command=command)
    print(f'wrote {board} and {board.with_suffix(".png")}')
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except (ValueError, OSError) as error:
        sys.exit(f'harness.leaderboard: error: {error}')
