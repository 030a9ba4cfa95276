"""The board spec: the ``leaderboard`` dict of an experiment config, validated.

Every field is optional; an experiment without a spec gets a generic board of every metric
its records hold::

    leaderboard = dict(
        title='Parameter sharing (BLIP Table 3)',       # board title; default: experiment name
        description='One line under the title.',        # also the board's line in the index
        primary_metrics=[('caption', 'coco_karpathy', 'test', 'CIDEr')],  # columns, bars, tests
        paper_reference='sharing',                       # a PAPER_TABLES name or 'headline'
        variant_order=['all', 'none'],                   # row order; unlisted variants follow
        units=dict(CIDEr='×100'),                        # metric -> unit, over the records'
        comparisons=[('all', 'none')],                   # variant pairs tested; default: all
    )
"""
import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

from harness.boards.aggregate import MetricKey
from harness.core.paper import known_references
from harness.results import ResultRecord

SPEC_FIELDS = ('title', 'description', 'primary_metrics', 'paper_reference', 'variant_order',
               'units', 'comparisons')


def natural_key(text: str) -> list:
    """Sort key that orders numbers by value: ``R@1, R@5, R@10`` rather than ``R@1, R@10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r'(\d+)', text)]


@dataclasses.dataclass
class BoardSpec:
    """What a board shows.

    Attributes:
        title: board title (default: the experiment name).
        description: one line under the title, also used by the index (default: a
            sentence naming the variants and task/dataset pairs).
        primary_metrics: ``(task, dataset, split, metric)`` tuples: the table columns
            (grouped into one table per task/dataset/split), the plotted panels and the
            significance tests (default: every metric the records hold, numbers ordered
            by value so recalls read R@1, R@5, R@10).
        paper_reference: the name of a paper table registered in
            ``harness.core.registry.PAPER_TABLES`` (e.g. ``'sharing'``), or ``'headline'``
            for the paper's headline results of every task; shown as separate, labelled
            reference rows (default: none).
        variant_order: row and bar order; variants found in the records but not listed
            follow, sorted.
        units: metric name -> unit label, overriding the unit the evaluator wrote into
            the records (``record.units``); a metric with neither shows no unit.
        comparisons: the ``(first, second)`` variant pairs the significance section tests
            (planned contrasts, so the multiple-comparison correction spends its power on
            the questions the experiment asks); default None: every pair.
    """

    title: str
    description: str
    primary_metrics: list[MetricKey]
    paper_reference: str | None
    variant_order: list[str]
    units: dict[str, str]
    comparisons: list[tuple[str, str]] | None = None

    @classmethod
    def from_config(cls, experiment: str, spec: Mapping[str, Any] | None,
                    records: Sequence[ResultRecord]) -> 'BoardSpec':
        """Validates a config's ``leaderboard`` dict and fills defaults from the records."""
        spec = dict(spec or {})
        where = f'leaderboard spec of experiment {experiment!r}'
        unknown = sorted(set(spec) - set(SPEC_FIELDS))
        if unknown:
            raise ValueError(f'{where}: unknown field(s) {unknown}; allowed fields are '
                             f'{list(SPEC_FIELDS)}')
        for name in ('title', 'description', 'paper_reference'):
            if spec.get(name) is not None and not isinstance(spec[name], str):
                raise ValueError(f'{where}: field {name!r} must be a string, got '
                                 f'{type(spec[name]).__name__}')
        primary = [_metric_key(item, where) for item in spec.get('primary_metrics') or []]
        if not primary:
            primary = sorted({(r.task, r.dataset, r.split, metric)
                              for r in records for metric in r.metrics},
                             key=lambda key: [natural_key(part) for part in key])
        if not primary:
            raise ValueError(f'experiment {experiment!r}: its records hold no metrics and its '
                             'leaderboard spec names no primary_metrics; nothing to show')
        listed = _strings(spec.get('variant_order') or [], f'{where}: field variant_order')
        units = dict(spec.get('units') or {})
        _strings([*units, *units.values()], f'{where}: field units (metric -> unit label)')
        reference = spec.get('paper_reference')
        if reference and reference not in known_references():
            raise ValueError(f'{where}: paper_reference={reference!r} is not a registered '
                             f'paper table; use one of {known_references()} or leave it out')
        found = sorted({record.variant for record in records} - set(listed))
        comparisons = _pairs(spec.get('comparisons'), f'{where}: field comparisons')
        strangers = sorted({v for pair in comparisons or [] for v in pair} - set(listed + found))
        if strangers:
            raise ValueError(f'{where}: comparisons name {strangers}, which are neither in '
                             f'variant_order nor in the records; use variant names')
        default_description = (f'Experiment `{experiment}`: {len(listed + found)} variant(s) '
                               f'on {", ".join(sorted({f"{k[0]}/{k[1]}" for k in primary}))}.')
        return cls(title=spec.get('title') or experiment,
                   description=spec.get('description') or default_description,
                   primary_metrics=primary,
                   paper_reference=reference or None,
                   variant_order=listed + found,
                   units=units,
                   comparisons=comparisons)

    def groups(self) -> dict[tuple[str, str, str], list[MetricKey]]:
        """Primary metrics grouped by (task, dataset, split), in spec order."""
        groups: dict[tuple[str, str, str], list[MetricKey]] = {}
        for key in self.primary_metrics:
            groups.setdefault(key[:3], []).append(key)
        return groups


def _metric_key(item: Any, where: str) -> MetricKey:
    """A primary-metric entry as a 4-tuple of strings, or an error saying the format."""
    if isinstance(item, (list, tuple)) and len(item) == 4 and all(isinstance(p, str) for p in item):
        return tuple(item)
    raise ValueError(f'{where}: primary_metrics entry {item!r} must be a (task, dataset, '
                     "split, metric) tuple of strings, e.g. ('caption', 'toyworld_coco', "
                     "'test', 'CIDEr')")


def _pairs(items: Any, where: str) -> list[tuple[str, str]] | None:
    """``items`` as a list of ``(first, second)`` variant pairs (None stays None), or an
    error naming the field."""
    if items is None:
        return None
    if not isinstance(items, (list, tuple)) or not all(
            isinstance(pair, (list, tuple)) and len(pair) == 2 for pair in items):
        raise ValueError(f"{where} must be a list of (first, second) variant pairs, e.g. "
                         f"[('all', 'none')], got {items!r}")
    return [tuple(_strings(pair, where)) for pair in items]


def _strings(items: Any, where: str) -> list[str]:
    """``items`` as a list of strings, or an error naming the field."""
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
        raise ValueError(f'{where} must hold strings, got {items!r}')
    return list(items)
