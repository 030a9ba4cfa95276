"""Where an experiment's time went: one line per stage run, summed into a closing table."""
import dataclasses
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence

from harness.core.files import atomic_write_json

#: How a stage was satisfied in this invocation.
RAN, REUSED, COPIED = 'ran', 'reused', 'copied'


@dataclass(frozen=True)
class StageTime:
    """One stage of one (variant, seed): how it was satisfied and the seconds it took here."""

    variant: str
    seed: int
    stage: str
    status: str
    seconds: float


def stage_time_table(times: Sequence[StageTime]) -> str:
    """A plain-text table: per stage name, how often it ran, was reused or copied, and the
    seconds spent running it; then per variant; then the total of this invocation."""
    lines: List[str] = []
    total = sum(time.seconds for time in times)

    def section(title: str, key) -> None:
        counts, seconds = defaultdict(lambda: defaultdict(int)), defaultdict(float)
        for time in times:
            counts[key(time)][time.status] += 1
            seconds[key(time)] += time.seconds
        width = max([len(title)] + [len(name) for name in counts])
        lines.append(f'{title:<{width}}  {RAN:>4} {REUSED:>6} {COPIED:>6} '
                     f'{"seconds":>9} {"share":>6}')
        for name, count in counts.items():
            share = seconds[name] / total if total else 0.0
            lines.append(f'{name:<{width}}  {count[RAN]:>4} {count[REUSED]:>6} '
                         f'{count[COPIED]:>6} {seconds[name]:>9.1f} {share:>6.1%}')

    section('stage', lambda time: time.stage)
    lines.append('')
    section('variant', lambda time: time.variant)
    lines.append(f'total: {total:.1f} s ({total / 60:.1f} min) running stages')
    return '\n'.join(lines)


def save_stage_times(path: Path, times: Sequence[StageTime]) -> None:
    """Write ``times`` to ``path`` as JSON (a child run hands them to its parent this way)."""
    atomic_write_json(path, [dataclasses.asdict(time) for time in times])


def load_stage_times(path: Path) -> List[StageTime]:
    """The stage times :func:`save_stage_times` wrote to ``path``."""
    return [StageTime(**fields) for fields in json.loads(Path(path).read_text())]
