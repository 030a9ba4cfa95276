"""The board's PNG: one bar panel per primary metric, one colour per variant."""
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

from harness.boards.aggregate import (latest_per_seed, mean_std, metric_header, metric_unit,
                                      records_by_variant, seed_values)
from harness.boards.spec import BoardSpec
from harness.core.optional import require
from harness.results import ResultRecord


def render_plot(experiment: str, records: Sequence[ResultRecord],
                board_spec: Mapping[str, Any] | None) -> bytes:
    """PNG bytes: one bar chart per primary metric, bars per variant in the same colour in
    every panel (legend on top), std over seeds as error bars (none when every variant ran
    one seed: the board's Significance section then has bootstrap intervals)."""
    matplotlib = require('matplotlib', 'leaderboard plots')
    matplotlib.use('Agg')
    from matplotlib import pyplot
    from matplotlib.patches import Patch

    records = latest_per_seed(r for r in records if r.experiment == experiment)
    spec = BoardSpec.from_config(experiment, board_spec, records)
    palette = pyplot.get_cmap('tab10').colors
    colours = {variant: palette[index % len(palette)]
               for index, variant in enumerate(spec.variant_order)}
    keys = spec.primary_metrics
    columns = min(3, len(keys))
    rows = math.ceil(len(keys) / columns)
    figure, axes = pyplot.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows + 0.9),
                                   squeeze=False)
    several_seeds = len({(r.variant, r.seed) for r in records}) > len({r.variant for r in records})
    for axis, key in zip(axes.flat, keys):
        by_variant = records_by_variant(records, key)
        variants = [v for v in spec.variant_order if v in by_variant]
        stats = [mean_std(seed_values(by_variant[v], key[3])) for v in variants]
        axis.bar(range(len(variants)), [mean for mean, _ in stats],
                 yerr=[std for _, std in stats] if several_seeds else None, capsize=4,
                 color=[colours[v] for v in variants])
        for position, (mean, std) in enumerate(stats):
            axis.annotate(f'{mean:.1f}', (position, mean + std), xytext=(0, 3),
                          textcoords='offset points', ha='center', fontsize=8)
        axis.set_xticks(range(len(variants)), variants, rotation=25, ha='right', fontsize=9)
        axis.set_title(f'{key[0]} · {key[1]} · {key[2]}', fontsize=9)
        axis.set_ylabel(metric_header(key[3], metric_unit(key, records, spec.units)))
        axis.margins(y=0.15)
    for axis in list(axes.flat)[len(keys):]:
        axis.set_visible(False)
    note = 'error bars: std over seeds' if several_seeds else \
        'one seed; significance: see the board'
    figure.suptitle(f'{spec.title}  (our runs; {note})', fontsize=11)
    figure.legend(handles=[Patch(color=colours[v], label=v) for v in spec.variant_order],
                  loc='upper center', bbox_to_anchor=(0.5, 0.96),
                  ncol=min(len(spec.variant_order), 6), fontsize=9, frameon=False)
    figure.tight_layout(rect=(0, 0, 1, 0.92))
    buffer = io.BytesIO()
    figure.savefig(buffer, format='png', dpi=110)
    pyplot.close(figure)
    return buffer.getvalue()
