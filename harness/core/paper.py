"""The BLIP paper's (Li et al. 2022) reference numbers as plugin data for leaderboards.

The numbers live in the task folder whose protocol measured them
(``tasks/<task>/paper_tables.py``), each behind a function registered in
``harness.core.registry.PAPER_TABLES``:

* an ablation table: ``@PAPER_TABLES.register_module(name='sharing')`` on a function
  returning a :class:`PaperTable`; a board shows it with ``paper_reference='sharing'``;
* headline results: a function registered under a name starting with ``headline_``
  (e.g. ``'headline_caption'``) returning a tuple of :class:`HeadlineNumber`;
  ``paper_reference='headline'`` collects the rows of every such function.

Values use the paper's scale; each table states its units, so nothing is guessed from
metric names.
"""
import dataclasses

from harness.core.registry import PAPER_TABLES

HEADLINE = 'headline'
HEADLINE_PREFIX = 'headline_'
HEADLINE_SOURCE = 'paper (headline results)'


@dataclasses.dataclass(frozen=True)
class PaperRow:
    """One row of a paper ablation table.

    ``variant`` is the name of our experiment variant that reproduces the row;
    ``noise_ratio`` is the percentage of web texts the filter removed (the paper's "noise
    ratio"); ``notes`` carries free text such as corpus size; ``source`` says where in the
    paper the numbers come from.
    """

    variant: str
    paper_label: str
    metrics: dict[str, float]
    source: str
    params_m: float | None = None
    noise_ratio: float | None = None
    notes: str = ''


@dataclasses.dataclass(frozen=True)
class PaperTable:
    """A paper ablation table: what it shows, where it was scored, its units and rows.

    ``units`` maps each metric of the rows to its unit label (e.g. ``{'CIDEr': '×100'}``).
    """

    name: str
    title: str
    task: str
    dataset: str
    split: str
    units: dict[str, str]
    rows: tuple[PaperRow, ...]


@dataclasses.dataclass(frozen=True)
class HeadlineNumber:
    """One of the paper's headline results (not an ablation), with its unit."""

    task: str
    dataset: str
    split: str
    metric: str
    value: float
    unit: str
    model: str = ''
    source: str = HEADLINE_SOURCE


def known_references() -> list[str]:
    """Every name a board's ``paper_reference`` accepts (registered tables + 'headline')."""
    PAPER_TABLES.import_from_location()
    return sorted([*PAPER_TABLES.module_dict, HEADLINE])


def headline_numbers() -> tuple[HeadlineNumber, ...]:
    """The headline rows of every task, in registration-name order."""
    names = [name for name in known_references() if name.startswith(HEADLINE_PREFIX)]
    return tuple(row for name in names for row in PAPER_TABLES.get(name)())


def paper_reference(name: str) -> PaperTable | tuple[HeadlineNumber, ...]:
    """The paper table (or headline rows) a board names; the error lists the known names."""
    if name == HEADLINE:
        return headline_numbers()
    known = known_references()
    if name not in known:
        raise ValueError(f'leaderboard.paper_reference={name!r} is not a registered paper '
                         f'table; use one of {known}, or leave it out (tables are registered '
                         'in harness.core.registry.PAPER_TABLES by tasks/*/paper_tables.py)')
    return PAPER_TABLES.get(name)()
