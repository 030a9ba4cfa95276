"""Where an experiment's time went: one line per stage run, summed into a closing table."""
from collections import defaultdict
from dataclasses import dataclass
from typing import List, Sequence

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
