"""The Markdown board of one experiment: plot, our tables, significance, paper rows, rank
agreement, provenance.

The plot's link is followed by what it shows and which metrics it leaves to the tables.
Our rows are aggregated over seeds (mean ± std), one table per (task, dataset, split),
each followed by what was evaluated (``record.extra['counts']``), the chance levels and
what the GFLOPs column counts (``record.extra['flops_scope']``). The paper's rows, where
the spec names a paper table, follow in a separate, labelled section, then Kendall's τ of
our ordering of the variants against the paper's.
"""
import datetime
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from harness.boards.aggregate import (MetricKey, board_warnings, describe_counts,
                                      format_mean_std, latest_per_seed, mean_std,
                                      metric_header, metric_unit, records_by_variant,
                                      seed_values)
from harness.boards.chance import chance_and_basis
from harness.boards.panels import NO_ERROR_BARS, board_panels
from harness.boards.reference import board_agreements, paper_table
from harness.boards.spec import BoardSpec
from harness.boards.stats import (board_comparisons, method_statement, paired_bootstrap,
                                  per_sample_means)
from harness.core.paper import HeadlineNumber, PaperTable, paper_reference
from harness.results import ResultRecord, git_revision


def table_lines(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """Markdown table lines (pipes in cells escaped)."""
    def cells(values: Iterable[Any]) -> str:
        return '| ' + ' | '.join(str(value).replace('|', '\\|') for value in values) + ' |'
    return [cells(header), '|' + '|'.join('---' for _ in header) + '|', *map(cells, rows)]


def _format_reference(value: float | None) -> str:
    """A paper number as the paper prints it (one or two decimals), or an em dash."""
    if value is None:
        return '—'
    text = f'{value:.2f}'
    return text[:-1] if text.endswith('0') else text


def _per_variant_note(label: str, values: Mapping[str, str]) -> list[str]:
    """One line stating a per-record fact: once when all variants agree, else per variant."""
    distinct = set(values.values())
    if not distinct:
        return []
    if len(distinct) == 1:
        return [f'{label}: {distinct.pop()}.', '']
    return [f'{label}: ' + '; '.join(f'{variant}: {text}' for variant, text in values.items())
            + '.', '']


def describe_load(load: Mapping[str, Any]) -> str:
    """``'471/471'``: tensors the evaluated model reads that its checkpoint filled, and
    ``'**not strict**'`` when the evaluation was allowed to run with some left unloaded."""
    text = f"{load['loaded']}/{load['expected']}"
    return text if load.get('strict', True) else f'{text} **not strict**'


def describe_init(init: Mapping[str, Any]) -> str:
    """``'vision: open_clip clip_init.pt (sha256 1a2b3c4d)'``: per initialised part, the
    kind of weights and the file they came from (``random`` parts have none)."""
    parts = []
    for part, spec in init.items():
        files = ', '.join(f'{name} (sha256 {digest[:8]})'
                          for name, digest in spec.get('sha256', {}).items())
        parts.append(f"{part}: {spec['type']}" + (f' {files}' if files else ''))
    return '; '.join(parts)


def _our_table(group: tuple[str, str, str], keys: Sequence[MetricKey], spec: BoardSpec,
               records: Sequence[ResultRecord]) -> list[str]:
    """Our rows for one (task, dataset, split): params, GFLOPs, weights loaded and each
    metric per variant, then what was evaluated and what the GFLOPs count."""
    task, dataset, split = group
    in_group = [r for r in records if (r.task, r.dataset, r.split) == group]
    show_flops = any(r.flops is not None for r in in_group)
    show_load = any(r.extra.get('load') for r in in_group)
    header = ['Variant', 'Params (M)'] + (['GFLOPs'] if show_flops else [])
    header += ['Weights loaded'] if show_load else []
    header += [metric_header(key[3], metric_unit(key, records, spec.units)) for key in keys]
    rows = []
    for variant in spec.variant_order:
        mine = [r for r in in_group if r.variant == variant]
        row = [variant, f'{max(r.params for r in mine) / 1e6:.1f}' if mine else '—']
        if show_flops:
            flops = [r.flops for r in mine if r.flops is not None]
            row.append(f'{mean_std(flops)[0]:.2f}' if flops else '—')
        if show_load:
            loads = dict.fromkeys(describe_load(r.extra['load']) for r in mine
                                  if r.extra.get('load'))
            row.append(', '.join(loads) or '—')
        for key in keys:
            values = seed_values(records_by_variant(mine, key).get(variant, []), key[3])
            row.append(format_mean_std(values) if values else '—')
        rows.append(row)
    lines = [f'### Our runs — {task} · `{dataset}` · split `{split}`', '',
             *table_lines(header, rows), '']
    lines += _per_variant_note('Evaluated', {
        r.variant: describe_counts(r.extra['counts']) for r in in_group if r.extra.get('counts')})
    lines += _per_variant_note('Initial weights', {
        r.variant: describe_init(r.extra['init']) for r in in_group if r.extra.get('init')})
    if show_load:
        lines += ['Weights loaded: tensors the evaluated model reads that were set from its '
                  'checkpoint (momentum encoders and queues are not read).'
                  + (' **not strict**: evaluated with `strict=False`; the tensors not loaded '
                     'kept their random initialisation.' if any(
                         not r.extra['load'].get('strict', True) for r in in_group
                         if r.extra.get('load')) else ''), '']
    lines += _chance_note(keys, spec, in_group)
    if show_flops:
        scopes = {r.variant: r.extra.get('flops_scope') or 'scope not recorded'
                  for r in in_group if r.flops is not None}
        lines += _per_variant_note('GFLOPs', scopes)
    return lines


def _chance_note(keys: Sequence[MetricKey], spec: BoardSpec,
                 records: Sequence[ResultRecord]) -> list[str]:
    """The chance level of each metric that has one (the plot's dashed lines), by basis, and
    how far each variant is above a recorded baseline (:func:`_above_baseline`)."""
    by_basis: dict[str, list[str]] = {}
    margins = []
    for key in keys:
        unit = metric_unit(key, records, spec.units)
        holding = [r for group in records_by_variant(records, key).values() for r in group]
        level, basis = chance_and_basis(key[3], holding, unit)
        if level is not None:
            by_basis.setdefault(basis, []).append(f'{key[3]} {level:.3g}{unit}')
            margins += _above_baseline(key, records)
    lines = [line for basis, levels in by_basis.items()
             for line in (f'Chance level ({basis}): ' + ', '.join(levels) + '.', '')]
    if margins:
        lines += ['Above that level, on the same samples (paired bootstrap over samples): '
                  + '; '.join(margins) + '.', '']
    return lines


def _above_baseline(key: MetricKey, records: Sequence[ResultRecord]) -> list[str]:
    """Per variant, its mean per-sample margin over the recorded baseline of ``key`` with the
    95% interval and p-value, where both have per-sample scores."""
    margins = []
    for variant, group in records_by_variant(records, key).items():
        ours = per_sample_means(group, key[3])
        baseline = per_sample_means(group, key[3], field='baseline_per_sample')
        if ours and baseline:
            test = paired_bootstrap(ours, baseline)
            margins.append(f'{variant} {key[3]} {test.difference:+.3g} '
                           f'(95% CI {test.low:+.3g} to {test.high:+.3g}, p = '
                           f'{test.p_value:.2g}, {test.samples} samples)')
    return margins


def _plot_caption(experiment: str, spec: BoardSpec, records: Sequence[ResultRecord]
                  ) -> list[str]:
    """The plot's link, what it shows and which metrics it leaves to the tables."""
    panels, table_only = board_panels(spec, records)
    lines = [f'![{spec.title}: primary metrics per variant]({experiment}.png)', '']
    if panels:
        kinds = sorted({p.error_kind for p in panels if p.error_kind != NO_ERROR_BARS})
        text = ('Plot: our mean per variant (one colour per variant in every panel); error '
                f'bars: {"; ".join(kinds) if kinds else "none"} (each panel\'s title says which)')
        if any(p.chance is not None for p in panels):
            text += '; dashed line: chance level (see the note under each table)'
        if any(p.paper for p in panels):
            text += ("; white diamonds: the paper's values on the right-hand axis (its scale), "
                     "with Kendall's τ of the two orderings in the title")
        lines += [text + '.', '']
    if table_only:
        names = ', '.join(f'{k[0]}/`{k[1]}`/{k[2]} {k[3]}' for k in table_only)
        lines += [f'Not plotted, as only one variant has a value (see the tables): {names}.', '']
    return lines


def _agreement_section(spec: BoardSpec, records: Sequence[ResultRecord]) -> list[str]:
    """Kendall's τ of our ordering of the variants against the paper's, per metric."""
    if paper_table(spec) is None:
        return []
    agreements = board_agreements(spec, records)
    lines = ['## Rank agreement with the paper', '']
    if not agreements:
        return lines + ["No primary metric has the paper's value for two of our variants.", '']
    rows = [[f'{a.key[0]}/`{a.key[1]}`/{a.key[2]} {a.key[3]}',
             f'{a.tau:+.2f}' if a.defined else 'undefined (all equal on one side)',
             f'{a.p_value:.3g}' if a.defined else '—',
             f'{len(a.variants)} ({", ".join(a.variants)})'] for a in agreements]
    return lines + [
        "Kendall's τ-b (`scipy.stats.kendalltau`, two-sided p) between our mean over seeds "
        "and the paper's value, over the variants both have: +1 = the paper's ordering, "
        '−1 = reversed. With few variants p cannot be small (4 variants without ties: '
        'p ≥ 0.083).', '',
        *table_lines(["Metric", "Kendall's τ", 'p', 'Variants (n)'], rows), '']


def _paper_section(table: PaperTable, spec: BoardSpec) -> list[str]:
    """The paper's rows, separated and labelled, plus the columns we have no match for."""
    metrics = list(dict.fromkeys(m for row in table.rows for m in row.metrics))
    optional = [('Params (M)', 'params_m'), ('Noise ratio (%)', 'noise_ratio'),
                ('Notes', 'notes')]
    optional = [(label, attr) for label, attr in optional
                if any(getattr(row, attr) not in (None, '') for row in table.rows)]
    header = ['Variant', "Paper's label", *(label for label, _ in optional),
              *(metric_header(m, table.units.get(m, '')) for m in metrics), 'Source']
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
             'variants, not absolute values.', '', *table_lines(header, rows), '']
    if unmatched:
        lines += ['Paper columns with no counterpart in our runs: '
                  + ', '.join(unmatched) + '.', '']
    missing_variants = [row.variant for row in table.rows if row.variant not in spec.variant_order]
    if missing_variants:
        lines += ['Paper variants we did not run: ' + ', '.join(missing_variants) + '.', '']
    return lines


def _headline_section(numbers: Sequence[HeadlineNumber]) -> list[str]:
    """The paper's headline numbers as a labelled reference table."""
    rows = [[h.task, f'`{h.dataset}`', h.split, metric_header(h.metric, h.unit),
             _format_reference(h.value), h.model or '—', h.source] for h in numbers]
    return ['## Paper reference rows — NOT our runs', '',
            *table_lines(['Task', 'Dataset', 'Split', 'Metric', 'Value', 'Model', 'Source'],
                         rows), '']


def _significance_section(spec: BoardSpec, records: Sequence[ResultRecord]) -> list[str]:
    """Pairwise comparisons of variants on every primary metric, Holm-adjusted."""
    comparisons = board_comparisons(spec, records)
    lines = ['## Significance', '']
    if not comparisons:
        return lines + ['No test run: it needs two variants that each have at least 2 seeds '
                        "or per-sample scores in `extra['per_sample']`.", '']
    lines += ['Difference = first − second. ' + method_statement(len(comparisons)), '']
    rows = []
    for c in comparisons:
        header = metric_header(c.key[3], metric_unit(c.key, records, spec.units))
        interval = f'[{c.interval[0]:+.2f}, {c.interval[1]:+.2f}]' if c.interval else '—'
        rows.append([f'{c.key[0]}/`{c.key[1]}`/{c.key[2]} {header}', f'{c.first} vs {c.second}',
                     f'{c.difference:+.2f}', c.method, interval, f'{c.p_value:.3g}',
                     f'{c.adjusted_p:.3g}',
                     '**significant**' if c.significant else 'not significant'])
    return lines + table_lines(['Metric', 'Pair', 'Difference', 'Test', '95% CI', 'p',
                                'Holm p', 'Verdict'], rows) + ['']


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
            *table_lines(['Variant', 'Seeds', 'Config hash', 'Git revision', 'Device'], rows),
            '']


def _unavailable_section(records: Sequence[ResultRecord]) -> list[str]:
    """Metrics an evaluation could not compute, with the evaluator's reason (once each)."""
    reasons = sorted({(r.task, r.dataset, r.split, metric, reason) for r in records
                      for metric, reason in r.extra.get('unavailable', {}).items()})
    if not reasons:
        return []
    rows = [[task, f'`{dataset}`', split, metric, reason]
            for task, dataset, split, metric, reason in reasons]
    return ['## Metrics not computed', '',
            *table_lines(['Task', 'Dataset', 'Split', 'Metric', 'Reason'], rows), '']


def _reference_section(spec: BoardSpec) -> list[str]:
    """The paper rows the spec names, if any."""
    if not spec.paper_reference:
        return []
    reference = paper_reference(spec.paper_reference)
    if isinstance(reference, PaperTable):
        return _paper_section(reference, spec)
    return _headline_section(reference)


def render_leaderboard(experiment: str, records: Sequence[ResultRecord],
                       board_spec: Mapping[str, Any] | None, *, command: str | None = None,
                       generated_at: datetime.datetime | None = None) -> str:
    """The Markdown board of one experiment.

    Args:
        experiment: experiment name; only records of this experiment are used, and the
            plot is linked as ``<experiment>.png``.
        records: results records (any experiments; re-runs of a seed keep the latest, and
            the board warns of colliding runs and smoke runs: ``board_warnings``).
        board_spec: the config's ``leaderboard`` dict (see ``BoardSpec``); None for a
            generic board.
        command: the command line that generated the board, stated in the header.
        generated_at: generation time (default: now, UTC).
    """
    records = [r for r in records if r.experiment == experiment]
    warnings = board_warnings(records)
    records = latest_per_seed(records)
    spec = BoardSpec.from_config(experiment, board_spec, records)
    generated_at = generated_at or datetime.datetime.now(datetime.timezone.utc)
    command = command or f'python -m harness.leaderboard --experiment {experiment} ...'
    lines = [f'# {spec.title}', '', spec.description, '',
             '> Auto-generated by `harness.leaderboard`; do not edit by hand.',
             f'> Command: `{command}`',
             f'> Generated {generated_at.isoformat(timespec="seconds")} at harness revision '
             f'`{git_revision()}` from {len(records)} record(s).', '',
             *(line for warning in warnings for line in (f'> **Warning:** {warning}', '')),
             *_plot_caption(experiment, spec, records)]
    for group, keys in spec.groups().items():
        lines += _our_table(group, keys, spec, records)
    lines += _unavailable_section(records)
    lines += _significance_section(spec, records)
    lines += _reference_section(spec)
    lines += _agreement_section(spec, records)
    lines += _provenance_section(records, spec)
    return '\n'.join(lines)
