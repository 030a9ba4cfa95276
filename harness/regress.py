"""CI score-regression gate: benchmark scores vs committed baselines.

A baseline is ``leaderboards/baselines/<name>.json``::

    {"name": "toyworld_smoke", "benchmark_config": "configs/ci_benchmark.py",
     "metrics": {"caption/toyworld_coco/test/CIDEr": 41.2, ...},
     "tolerance": {"caption/toyworld_coco/test/CIDEr": 0.5, ...},
     "threads": 2,
     "created": "2026-01-01T00:00:00+00:00", "git_revision": "abc123"}

``threads`` is the CPU thread count the scores were computed with; the gate's benchmark run
uses it whatever the machine or ``OMP_NUM_THREADS`` says (scores depend on it, see
:mod:`harness.benchmark`).

A metric fails when it drops below ``baseline - tolerance`` (absolute), or is missing from
the current scores; a rise passes and is noted as improved. Exit code 1 on any failure.
Metrics whose evaluator declares lower values better (median ranks) are left out of the
benchmark's scores: a drop gate cannot guard them, and ``--update`` must not add them.

Usage::

    python -m harness.regress [--baseline NAME | --all] [--scores FILE] [--update]

Without ``--scores`` the scores come from running the baseline's benchmark config through
``harness.benchmark.run_benchmark``. ``--update`` rewrites the baseline with the current
scores (tolerances and thread count kept) and prints old vs new; it refuses to run in a
tree with uncommitted changes to tracked files, so a baseline's ``git_revision`` names the
code that produced it.
"""
import argparse
import dataclasses
import datetime
import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.benchmark import run_benchmark
from harness.core.files import atomic_write_text
from harness.results import git_revision

DEFAULT_BASELINES_DIR = Path('leaderboards') / 'baselines'
REQUIRED_FIELDS = ('name', 'benchmark_config', 'metrics', 'tolerance')
PASS, FAIL, MISSING, NEW = 'PASS', 'FAIL', 'MISSING', 'NEW'
FAILING_STATUSES = (FAIL, MISSING)
_FLOAT_SLACK = 1e-9  # relative; keeps "exactly baseline - tolerance" a pass


@dataclasses.dataclass
class Baseline:
    """Committed scores of one benchmark config with per-metric absolute tolerances."""

    name: str
    benchmark_config: str
    metrics: dict[str, float]
    tolerance: dict[str, float]
    threads: int | None = None
    created: str = ''
    git_revision: str = ''

    def to_json(self) -> str:
        """The baseline file's text."""
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=False) + '\n'


def _number_map(value: Any, path: Path, field: str) -> dict[str, float]:
    """A ``{name: number}`` field, or an error naming the file and field."""
    if not isinstance(value, Mapping) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values()):
        raise ValueError(f'{path}: field "{field}" must be an object of metric name -> number')
    return {str(k): float(v) for k, v in value.items()}


def load_baseline(path: str | Path) -> Baseline:
    """Reads and validates a baseline file; errors name the file, the field and the fix."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding='utf-8'))
    except json.JSONDecodeError as error:
        raise ValueError(f'{path}: malformed JSON ({error.msg}, line {error.lineno})') from error
    if not isinstance(data, Mapping):
        raise ValueError(f'{path}: expected a JSON object with fields {list(REQUIRED_FIELDS)}')
    missing = [field for field in REQUIRED_FIELDS if field not in data]
    if missing:
        raise ValueError(f'{path}: missing field(s) {missing}; a baseline needs '
                         f'{list(REQUIRED_FIELDS)} (plus "created", "git_revision")')
    metrics = _number_map(data['metrics'], path, 'metrics')
    tolerance = _number_map(data['tolerance'], path, 'tolerance')
    uncovered = sorted(set(metrics) - set(tolerance))
    if uncovered:
        raise ValueError(f'{path}: field "tolerance" lacks {uncovered}; add an absolute '
                         'tolerance (>= 0) for every metric, e.g. "tolerance": {"<metric>": 0.5}')
    negative = sorted(key for key, value in tolerance.items() if value < 0)
    if negative:
        raise ValueError(f'{path}: field "tolerance" has negative values for {negative}; '
                         'tolerances are absolute drops and must be >= 0')
    threads = data.get('threads')
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 1):
        raise ValueError(f'{path}: field "threads" is {threads!r}; it must be the whole number '
                         '(>= 1) of CPU threads the scores were computed with, e.g. 2')
    return Baseline(name=str(data['name']), benchmark_config=str(data['benchmark_config']),
                    metrics=metrics, tolerance=tolerance, threads=threads,
                    created=str(data.get('created', '')),
                    git_revision=str(data.get('git_revision', '')))


@dataclasses.dataclass
class Row:
    """One metric's gate outcome."""

    metric: str
    baseline: float | None
    current: float | None
    delta: float | None
    tolerance: float | None
    status: str
    note: str = ''


def compare(baseline: Baseline, current: Mapping[str, float]) -> list[Row]:
    """Gate rows for the baseline's metrics (PASS/FAIL/MISSING), then the current scores
    the baseline does not know (NEW, not gated)."""
    rows = []
    for metric, reference in baseline.metrics.items():
        tolerance = baseline.tolerance[metric]
        if metric not in current:
            rows.append(Row(metric, reference, None, None, tolerance, MISSING,
                            'absent from the current scores'))
            continue
        value = float(current[metric])
        delta = value - reference
        floor = reference - tolerance - _FLOAT_SLACK * max(1.0, abs(reference))
        if not math.isfinite(value) or value < floor:
            note = 'not a finite number' if not math.isfinite(value) else 'dropped beyond tolerance'
            rows.append(Row(metric, reference, value, delta, tolerance, FAIL, note))
        else:
            rows.append(Row(metric, reference, value, delta, tolerance, PASS,
                            'improved' if delta > tolerance else ''))
    for metric in sorted(set(current) - set(baseline.metrics)):
        rows.append(Row(metric, None, float(current[metric]), None, None, NEW,
                        'not gated; --update adds it'))
    return rows


def gate_failed(rows: Sequence[Row]) -> bool:
    """Whether any row fails the gate."""
    return any(row.status in FAILING_STATUSES for row in rows)


def _format_value(value: float | None, signed: bool = False) -> str:
    """A number for the fixed-width tables (``-`` when absent)."""
    if value is None:
        return '-'
    return f'{value:+.4f}' if signed else f'{value:.4f}'


def _fixed_width(header: Sequence[str], rows: Sequence[Sequence[str]], text_columns: int) -> str:
    """A plain-text table: the first and the last ``text_columns`` columns left-aligned,
    the numbers between them right-aligned."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    numeric = range(1, len(header) - text_columns)
    lines = []
    for cells in [header, *rows]:
        padded = [cell.rjust(width) if index in numeric else cell.ljust(width)
                  for index, (cell, width) in enumerate(zip(cells, widths))]
        lines.append('  '.join(padded).rstrip())
    return '\n'.join(lines)


def format_table(rows: Sequence[Row]) -> str:
    """The gate table: metric, baseline, current, delta, tolerance, status, note."""
    header = ['metric', 'baseline', 'current', 'delta', 'tolerance', 'status', 'note']
    body = [[row.metric, _format_value(row.baseline), _format_value(row.current),
             _format_value(row.delta, signed=True), _format_value(row.tolerance), row.status,
             row.note] for row in rows]
    return _fixed_width(header, body, text_columns=2)


def benchmark_scores(baseline: Baseline) -> dict[str, float]:
    """Runs the baseline's benchmark config with the baseline's thread count and returns its
    flat ``{metric: score}``."""
    if baseline.threads is None:
        raise ValueError(f'baseline {baseline.name!r} has no field "threads"; scores depend on '
                         'the CPU thread count, so add the count they were computed with '
                         '(e.g. "threads": 2) to its JSON file')
    scores = run_benchmark(baseline.benchmark_config, threads=baseline.threads,
                           rising_only=True)
    return {key: float(value) for key, value in scores.items()}


def check_clean_tree() -> str:
    """The current git revision, or an error when it cannot name the code exactly (tracked
    files changed, or not a git checkout): a baseline must come from a commit."""
    revision = git_revision()
    if revision == 'unknown' or revision.endswith('-dirty'):
        raise RuntimeError(f'--update records the baseline\'s git revision, but the tree is '
                           f'{"not a git checkout" if revision == "unknown" else "dirty"} '
                           f'({revision}); commit or stash your changes to tracked files and '
                           f'run --update again')
    return revision


def load_scores(path: str | Path) -> dict[str, float]:
    """A precomputed scores file: ``{metric: number}`` or ``{"metrics": {metric: number}}``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding='utf-8'))
    except json.JSONDecodeError as error:
        raise ValueError(f'{path}: malformed JSON ({error.msg}, line {error.lineno})') from error
    if isinstance(data, Mapping) and isinstance(data.get('metrics'), Mapping):
        return _number_map(data['metrics'], path, 'metrics')
    return _number_map(data, path, '<top level>')


def update_baseline(path: Path, baseline: Baseline, current: Mapping[str, float],
                    revision: str) -> str:
    """Rewrites the baseline file with ``current`` scores of the code at ``revision``
    (tolerances kept; new metrics get 0) and returns the old-vs-new table."""
    tolerance = {key: baseline.tolerance.get(key, 0.0) for key in current}
    updated = dataclasses.replace(
        baseline, metrics={key: float(value) for key, value in current.items()},
        tolerance=tolerance, git_revision=revision,
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'))
    atomic_write_text(path, updated.to_json())
    rows = []
    for metric in list(baseline.metrics) + sorted(set(current) - set(baseline.metrics)):
        old, new = baseline.metrics.get(metric), current.get(metric)
        note = ('removed' if new is None else 'added (tolerance 0: set one)' if old is None
                else 'changed' if new != old else '')
        rows.append([metric, _format_value(old), _format_value(new),
                     _format_value(None if old is None or new is None else new - old, True),
                     note])
    return _fixed_width(['metric', 'old', 'new', 'delta', 'note'], rows, text_columns=1)


def _baseline_paths(baselines_dir: Path, name: str | None) -> list[Path]:
    """The baseline files to gate: one by name, or all in the directory."""
    if name is not None:
        path = baselines_dir / f'{name}.json'
        if not path.exists():
            known = sorted(p.stem for p in baselines_dir.glob('*.json'))
            raise FileNotFoundError(f'baseline {path} does not exist; known baselines: {known}')
        return [path]
    paths = sorted(baselines_dir.glob('*.json'))
    if not paths:
        raise FileNotFoundError(f'no baselines in {baselines_dir}; commit one as <name>.json '
                                f'with fields {list(REQUIRED_FIELDS)}')
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns 1 when any gated metric fails, else 0."""
    parser = argparse.ArgumentParser(description='Gate benchmark scores against baselines.')
    which = parser.add_mutually_exclusive_group()
    which.add_argument('--baseline', metavar='NAME', help='gate one baseline')
    which.add_argument('--all', action='store_true', help='gate every baseline (default)')
    parser.add_argument('--scores', type=Path, metavar='FILE',
                        help='precomputed scores JSON instead of running the benchmark')
    parser.add_argument('--update', action='store_true',
                        help='rewrite the baseline(s) with the current scores')
    parser.add_argument('--baselines-dir', type=Path, default=DEFAULT_BASELINES_DIR)
    args = parser.parse_args(argv)
    paths = _baseline_paths(args.baselines_dir, args.baseline)
    if args.scores and len(paths) > 1:
        parser.error('--scores holds one benchmark\'s scores; choose its baseline with '
                     '--baseline NAME')
    revision = check_clean_tree() if args.update else None
    failed = False
    for path in paths:
        baseline = load_baseline(path)
        current = load_scores(args.scores) if args.scores else benchmark_scores(baseline)
        print(f'== {baseline.name} ({path}) — benchmark {baseline.benchmark_config}')
        if args.update:
            print(update_baseline(path, baseline, current, revision))
            print(f'updated {path}\n')
            continue
        rows = compare(baseline, current)
        print(format_table(rows))
        failures = [row.metric for row in rows if row.status in FAILING_STATUSES]
        print(f'RESULT: {"FAIL " + ", ".join(failures) if failures else "PASS"}\n')
        failed = failed or bool(failures)
    return 1 if failed else 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except (ValueError, OSError, RuntimeError) as error:
        sys.exit(f'harness.regress: error: {error}')
