"""The board's PNG: one bar panel per compared metric, one colour per variant throughout.

Each panel (see :mod:`.panels` for the numbers) shows our mean per variant with its error
bars, the chance level as a dashed line where the test-set size gives one, and, where the
board's paper table reports the metric, the paper's values as white diamonds on their own
right-hand axis (the paper's scale), with Kendall's τ of the two orderings in the title.
Metrics only one variant has are left to the board's tables. The PNG carries no
timestamp or software version, so equal records give equal bytes.
"""
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

from harness.boards.aggregate import MetricKey, latest_per_seed, metric_header
from harness.boards.panels import Panel, board_panels
from harness.boards.spec import BoardSpec
from harness.core.optional import require
from harness.results import ResultRecord

PAPER_MARKER = dict(marker='D', linestyle='none', markersize=7, markerfacecolor='white',
                    markeredgecolor='black', markeredgewidth=1.3)
CHANCE_LINE = dict(linestyle='--', linewidth=1.0, color='0.35')


def panel_title(panel: Panel) -> str:
    """Where the metric was scored, what the error bars are, the chance level and, with the
    paper's values, the rank agreement."""
    task, dataset, split, _ = panel.key
    lines = [f'{task} · {dataset} · {split}', panel.error_kind]
    if panel.chance is not None:
        lines[-1] += f'; chance {panel.chance:.3g} (dashed)'
    if panel.agreement is not None:
        a = panel.agreement
        lines.append(f"rank vs paper: Kendall's τ = {a.tau:+.2f} (p = {a.p_value:.2g}, "
                     f'n = {len(a.variants)})' if a.defined else
                     "rank vs paper: Kendall's τ undefined (all equal on one side)")
    return '\n'.join(lines)


def _draw_panel(axis, panel: Panel, colours: Mapping[str, Any]) -> None:
    """Bars, error bars, value labels, chance line and paper markers of one panel."""
    positions = range(len(panel.variants))
    yerr = None if panel.errors is None else [[below for below, _ in panel.errors],
                                              [above for _, above in panel.errors]]
    axis.bar(positions, panel.means, yerr=yerr, capsize=4, error_kw=dict(elinewidth=1.2),
             color=[colours[v] for v in panel.variants])
    aboves = [above for _, above in panel.errors] if panel.errors else [0.0] * len(panel.means)
    for position, (mean, above) in enumerate(zip(panel.means, aboves)):
        axis.annotate(f'{mean:.1f}', (position, mean + above), xytext=(0, 2),
                      textcoords='offset points', ha='center', va='bottom', fontsize=7,
                      rotation=90 if len(panel.variants) > 5 else 0)
    if panel.chance is not None:
        axis.axhline(panel.chance, **CHANCE_LINE)
    axis.set_xticks(positions, panel.variants, rotation=30, ha='right', fontsize=8)
    axis.set_ylabel(metric_header(panel.key[3], panel.unit), fontsize=9)
    axis.set_title(panel_title(panel), fontsize=8)
    axis.margins(y=0.2 if len(panel.variants) > 5 else 0.12)
    if panel.paper:
        twin = axis.twinx()
        twin.plot([panel.variants.index(v) for v in panel.paper], list(panel.paper.values()),
                  **PAPER_MARKER)
        twin.set_ylabel(f'paper: {metric_header(panel.key[3], panel.paper_unit)}, '
                        f'{panel.paper_dataset}', fontsize=8)
        twin.tick_params(axis='y', labelsize=7)
        twin.margins(y=0.25)


def _draw_board(pyplot, spec: BoardSpec, panels: Sequence[Panel],
                table_only: Sequence[MetricKey]):
    """The figure: panels in up to 3 columns, title, and a legend below of the variants
    shown (colours fixed by the board's variant order), paper markers and chance lines."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    palette = pyplot.get_cmap('tab10').colors
    colours = {variant: palette[index % len(palette)]
               for index, variant in enumerate(spec.variant_order)}
    shown = {v for p in panels for v in p.variants}
    handles = [Patch(color=colours[v], label=v) for v in spec.variant_order if v in shown]
    if any(p.paper for p in panels):
        handles.append(Line2D([], [], label="paper's value (right axis)", **PAPER_MARKER))
    if any(p.chance is not None for p in panels):
        handles.append(Line2D([], [], label='chance level', **CHANCE_LINE))
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    size = (max(4.8 * columns, 7.5), 3.9 * rows + 0.8)  # inches; wide enough for the title
    figure, axes = pyplot.subplots(rows, columns, figsize=size, squeeze=False,
                                   layout='constrained')
    for axis, panel in zip(axes.flat, panels):
        _draw_panel(axis, panel, colours)
    for axis in list(axes.flat)[len(panels):]:
        axis.set_visible(False)
    subtitle = 'bars: our runs, mean over seeds'
    if table_only:
        subtitle += f'; {len(table_only)} metric(s) with one variant only are in the tables'
    figure.suptitle(f'{spec.title}\n{subtitle}', fontsize=10)
    figure.legend(handles=handles, loc='outside lower center', ncol=min(len(handles), 5),
                  fontsize=8, frameon=False)
    return figure


def render_plot(experiment: str, records: Sequence[ResultRecord],
                board_spec: Mapping[str, Any] | None) -> bytes:
    """PNG bytes of the board's plot (module docstring); a board with no metric that two
    variants share gets a short note instead of panels."""
    matplotlib = require('matplotlib', 'leaderboard plots')
    matplotlib.use('Agg')
    from matplotlib import pyplot

    records = latest_per_seed(r for r in records if r.experiment == experiment)
    spec = BoardSpec.from_config(experiment, board_spec, records)
    panels, table_only = board_panels(spec, records)
    if panels:
        figure = _draw_board(pyplot, spec, panels, table_only)
    else:
        figure = pyplot.figure(figsize=(8, 1.6))
        figure.suptitle(spec.title, fontsize=10)
        figure.text(0.5, 0.4, "No metric has values for two variants: see the board's tables.",
                    ha='center', va='center', fontsize=10)
    buffer = io.BytesIO()
    figure.savefig(buffer, format='png', dpi=110, metadata={'Software': None})
    pyplot.close(figure)
    return buffer.getvalue()
