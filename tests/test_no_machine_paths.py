"""Committed boards and baselines must not leak paths of the machine that generated them."""
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCANNED_SUFFIXES = ('.md', '.json')
# An absolute POSIX path under a machine-specific root, or a Windows drive path; the
# look-behind keeps URLs (``https://host/home/...``) and relative paths (``a/tmp/b``) out.
MACHINE_PATH = re.compile(
    r'(?<![\w.:/-])/(?:root|home|work|tmp|usr|opt|var|mnt|scratch|Users)/[^\s`\'")\]|]*'
    r'|(?<![\w])[A-Za-z]:\\[^\s`\'")\]|]*')


def machine_paths(text: str) -> list[tuple[int, str]]:
    """``(line number, path)`` of every absolute machine path in ``text``."""
    return [(number, match.group(0)) for number, line in enumerate(text.splitlines(), 1)
            for match in MACHINE_PATH.finditer(line)]


def committed_board_files() -> list[Path]:
    """Markdown and JSON files under ``leaderboards/`` that git tracks."""
    listed = subprocess.run(['git', '-C', str(REPO), 'ls-files', 'leaderboards'], check=True,
                            capture_output=True, text=True).stdout.split()
    return [REPO / name for name in listed if name.endswith(SCANNED_SUFFIXES)]


def test_pattern_finds_machine_paths_and_spares_urls_and_relative_paths():
    sample = '\n'.join([
        'jar /work/ci/.venv/lib/stanford-corenlp.jar is missing',
        'see https://example.org/home/page and configs/_base_/tmp/file.py',
        '{"root": "/home/alice/data"}',
        'weights in C:\\Users\\bob\\blip.pth',
        'checkpoints/bert-base-uncased and 95% CI [-1.00, +2.00] | 1/2 |',
    ])
    assert machine_paths(sample) == [(1, '/work/ci/.venv/lib/stanford-corenlp.jar'),
                                     (3, '/home/alice/data'),
                                     (4, 'C:\\Users\\bob\\blip.pth')]


@pytest.mark.parametrize('path', committed_board_files(), ids=lambda p: p.name)
def test_committed_boards_hold_no_machine_paths(path):
    hits = machine_paths(path.read_text(encoding='utf-8'))
    assert not hits, '\n'.join(
        f'{path.relative_to(REPO)}:{line}: absolute machine path {found!r}; write it '
        'relative to the repository or describe it without the path' for line, found in hits)
