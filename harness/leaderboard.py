"""Leaderboard CLI: results records -> Markdown board + PNG plot + index.

Run as ``python -m harness.leaderboard --experiment NAME --results DIR [DIR ...]
--out leaderboards/ [--config configs/NAME.py]``. The board's layout comes from the
``leaderboard`` dict of the experiment config (see :class:`harness.boards.spec.BoardSpec`);
the work is done by the :mod:`harness.boards` package, whose entry points are re-exported
here.
"""
import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.boards.markdown import render_leaderboard
from harness.boards.writer import write_index, write_leaderboard
from harness.results import collect_records

__all__ = ['render_leaderboard', 'write_leaderboard', 'write_index', 'load_board_spec', 'main']


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
