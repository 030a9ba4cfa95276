"""Checkpoint files that survive a crash: atomic writes, complete-file checks, resume choice.

mmengine writes a checkpoint by opening its final path and streaming the bytes into it, so a
``kill -9`` or a full disk during the save leaves a truncated ``epoch_N.pth`` that every
later ``--resume`` fails on. Here:

* :class:`AtomicLocalBackend` (mmengine file backend ``'harness_atomic_local'``) writes each
  checkpoint to a temp file and renames it (:func:`harness.core.files.atomic_write_bytes`);
* :func:`checkpoint_is_complete` tells a whole checkpoint from a truncated one;
* :func:`resume_checkpoint` picks what ``--resume`` loads: the file named in
  ``last_checkpoint`` when it is complete, else the newest complete ``epoch_*.pth`` /
  ``iter_*.pth``.
"""
import re
import zipfile
from pathlib import Path
from typing import Optional, Tuple

from mmengine.fileio import LocalBackend, register_backend

from harness.core.files import atomic_write_bytes

ATOMIC_BACKEND = 'harness_atomic_local'
_RESUMABLE_NAME = re.compile(r'^(epoch|iter)_(\d+)\.pth$')
# The temp files atomic_write_bytes makes: '.<name>.<random>.tmp' next to the target.
STALE_TEMP_GLOB = '.*.pth.*.tmp'


@register_backend(ATOMIC_BACKEND)
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend whose ``put`` replaces the file atomically."""

    def put(self, obj: bytes, filepath) -> None:
        """Write ``obj`` to a temp file beside ``filepath`` and rename it over ``filepath``."""
        atomic_write_bytes(filepath, obj)


def checkpoint_is_complete(path: Path) -> bool:
    """Whether ``path`` is a whole ``torch.save`` file.

    ``torch.save`` writes a zip archive whose central directory comes last, so a truncated
    file has none; the pickle entry must be listed too. This reads the directory only, not
    the weights (a multi-GB checkpoint is not loaded twice).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith('/data.pkl') or name == 'data.pkl'
                       for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def _step_of(path: Path) -> Tuple[int, int]:
    """Sort key of a resumable checkpoint name: by number, iteration ones after epoch ones."""
    kind, number = _RESUMABLE_NAME.match(path.name).groups()
    return int(number), int(kind == 'iter')


def resume_checkpoint(work_dir: Path) -> Tuple[Optional[str], Optional[str]]:
    """The checkpoint ``--resume`` should load from ``work_dir``, and what was wrong if any.

    Returns ``(path, problem)``: the path named in ``last_checkpoint`` when that file is
    complete (``problem`` is ``None``); else the newest complete ``epoch_N.pth`` /
    ``iter_N.pth``, or ``None`` when there is none, with ``problem`` saying why the pointer
    was not used and what happens instead.
    """
    work_dir = Path(work_dir)
    pointer = work_dir / 'last_checkpoint'
    named = pointer.read_text().strip() if pointer.is_file() else ''
    if named and checkpoint_is_complete(Path(named)):
        return named, None
    problem = (f'{pointer} names {named}, which is missing or incomplete' if named
               else f'{pointer} is missing or empty')
    candidates = sorted((p for p in work_dir.iterdir() if _RESUMABLE_NAME.match(p.name)),
                        key=_step_of, reverse=True) if work_dir.is_dir() else []
    for candidate in candidates:
        if checkpoint_is_complete(candidate):
            return str(candidate), (f'{problem}; resuming from the newest complete '
                                    f'checkpoint {candidate} instead')
    return None, (f'{problem} and no complete epoch_*.pth/iter_*.pth is in {work_dir}; '
                  f'training starts from the beginning')


def remove_stale_temp_files(folder: Path) -> list:
    """Delete the temp files of checkpoint saves that a killed process left in ``folder``."""
    stale = sorted(Path(folder).glob(STALE_TEMP_GLOB))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
