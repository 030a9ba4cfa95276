"""The results store: one JSON line per (experiment, variant, task, dataset, split, seed).

Each work dir holds a ``results.jsonl``; leaderboards and reports are built by collecting
every such file under some roots. Metric values are stored in the scale the paper reports
them (BLEU/CIDEr ×100, recalls and accuracies in %), so they sit beside the paper's rows.
Writes are atomic: a reader never sees a half-written line, even if the writer dies.
"""
import dataclasses
import datetime
import fcntl
import hashlib
import json
import math
import os
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.core.files import atomic_write_bytes

if TYPE_CHECKING:
    import pandas

RESULTS_FILENAME = 'results.jsonl'


@dataclasses.dataclass
class ResultRecord:
    """Scores and provenance of one evaluation of one variant on one task split.

    ``units`` and ``higher_is_better`` map each metric to the unit and direction its
    evaluator declared (``harness.core.task_result.Metric``); boards read them from here.
    ``flops`` is GFLOPs per image/sample (multiply-adds counted once, see
    ``harness.flops``); ``throughput`` maps a unit such as ``'images/s'`` to its rate;
    ``extra`` holds anything task-specific, e.g. ``extra['per_sample']`` =
    ``{metric: {sample_id: score}}`` which enables paired significance tests.
    """

    experiment: str
    variant: str
    task: str
    dataset: str
    split: str
    metrics: dict[str, float]
    params: int
    units: dict[str, str] = dataclasses.field(default_factory=dict)
    higher_is_better: dict[str, bool] = dataclasses.field(default_factory=dict)
    flops: float | None = None
    throughput: dict[str, float] = dataclasses.field(default_factory=dict)
    seed: int = 0
    config_hash: str = ''
    git_revision: str = 'unknown'
    device: str = ''
    wall_time_s: float = 0.0
    timestamp: str = dataclasses.field(
        default_factory=lambda: datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec='seconds'))
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> str:
        """One JSON line (no newline) holding every field."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True, allow_nan=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> 'ResultRecord':
        """Builds a record from parsed JSON; ``where`` (file:line) prefixes any error."""
        if not isinstance(data, Mapping):
            raise ValueError(f'{where}: expected a JSON object, got {type(data).__name__}')
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f'{where}: unknown field(s) {unknown}; known fields are '
                             f'{sorted(names)} (remove them or move them under "extra")')
        required = [field.name for field in dataclasses.fields(cls)
                    if field.default is dataclasses.MISSING
                    and field.default_factory is dataclasses.MISSING]
        missing = [name for name in required if name not in data]
        if missing:
            raise ValueError(f'{where}: missing required field(s) {missing}')
        if not isinstance(data['metrics'], Mapping):
            raise ValueError(f'{where}: field "metrics" must be an object of name -> number')
        return cls(**data)


def _plain(value: Any, key_path: str) -> Any:
    """A JSON-able, order-independent form of a config value, for hashing."""
    if hasattr(value, 'to_dict'):
        value = value.to_dict()
    if isinstance(value, Mapping):
        return {str(key): _plain(item, f'{key_path}.{key}') for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item, f'{key_path}[{index}]') for index, item in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        return sorted(_plain(item, key_path) for item in value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, type) or callable(value):
        return f'{value.__module__}.{value.__qualname__}'
    raise TypeError(f'config_hash: cannot hash config field "{key_path}" of type '
                    f'{type(value).__name__}; use plain values (str/number/list/dict) there')


def config_hash(cfg_dict: Mapping[str, Any]) -> str:
    """Stable 16-hex-digit hash of a config's plain-dict form (key order does not matter).

    Accepts a dict, an mmengine ``Config`` or ``ConfigDict``.
    """
    canonical = json.dumps(_plain(cfg_dict, 'cfg'), sort_keys=True, separators=(',', ':'))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _git(args: list[str], repo_dir: Path) -> str:
    """Output of a read-only git command; optional locks off so it never writes the index."""
    environment = {**os.environ, 'GIT_OPTIONAL_LOCKS': '0'}
    return subprocess.run(['git', '-C', str(repo_dir), *args], check=True, text=True,
                          capture_output=True, env=environment).stdout.strip()


def git_revision(repo_dir: str | Path | None = None) -> str:
    """Commit hash of the harness checkout, with ``-dirty`` if tracked files changed.

    Returns ``'unknown'`` outside a git work tree or without git. ``repo_dir`` defaults to
    this package's directory.
    """
    repo_dir = Path(repo_dir) if repo_dir is not None else Path(__file__).resolve().parent
    try:
        revision = _git(['rev-parse', 'HEAD'], repo_dir)
        changes = _git(['status', '--porcelain', '--untracked-files=no'], repo_dir)
    except (OSError, subprocess.CalledProcessError):
        return 'unknown'
    return f'{revision}-dirty' if changes else revision


def append_record(work_dir: str | Path, record: ResultRecord) -> Path:
    """Appends ``record`` to ``<work_dir>/results.jsonl`` atomically; returns the file path.

    The whole file is rewritten through ``atomic_write_bytes`` under an exclusive lock
    (``results.jsonl.lock``), so concurrent writers never lose each other's lines.
    """
    path = Path(work_dir) / RESULTS_FILENAME
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(RESULTS_FILENAME + '.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        existing = path.read_bytes() if path.exists() else b''
        if existing and not existing.endswith(b'\n'):
            existing += b'\n'
        atomic_write_bytes(path, existing + record.to_json().encode('utf-8') + b'\n')
    return path


def read_records(path: str | Path) -> list[ResultRecord]:
    """Records of one ``results.jsonl``; blank lines are skipped.

    Raises:
        ValueError: naming the file and line of a malformed line or field.
    """
    path = Path(path)
    records = []
    for line_number, line in enumerate(path.read_text(encoding='utf-8').splitlines(), 1):
        if not line.strip():
            continue
        where = f'{path}:{line_number}'
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f'{where}: malformed JSON ({error.msg} at column {error.colno}); '
                             'fix or delete this line') from error
        records.append(ResultRecord.from_dict(data, where))
    return records


def collect_records(roots: Iterable[str | Path]) -> list[ResultRecord]:
    """Every record of every ``results.jsonl`` found recursively under ``roots``.

    A root may also be a ``results.jsonl`` file itself. Files are read in sorted path order.
    """
    records = []
    for root in map(Path, roots):
        if not root.exists():
            raise FileNotFoundError(f'results root {root} does not exist; pass a work dir '
                                    f'or a {RESULTS_FILENAME} file')
        paths = [root] if root.is_file() else sorted(root.rglob(RESULTS_FILENAME))
        for path in paths:
            records.extend(read_records(path))
    return records


def records_to_frame(records: Iterable[ResultRecord]) -> 'pandas.DataFrame':
    """One row per record; ``metrics`` and ``throughput`` flattened into columns
    ``metrics.<name>`` and ``throughput.<unit>``; ``extra`` is left out."""
    rows = []
    for record in records:
        row = {key: value for key, value in dataclasses.asdict(record).items()
               if key not in ('metrics', 'throughput', 'extra')}
        row.update({f'metrics.{name}': _as_float(value) for name, value in record.metrics.items()})
        row.update({f'throughput.{unit}': value for unit, value in record.throughput.items()})
        rows.append(row)
    import pandas  # here, not at the top: only boards and reports build frames
    return pandas.DataFrame(rows)


def _as_float(value: Any) -> float:
    """A metric value as float; ``None`` (metric unavailable) becomes NaN."""
    return math.nan if value is None else float(value)
