"""Atomic file writes: a reader sees the old file or the new one, never a mix.

Every file the harness hands on (results, manifests, caches, corpora, boards) is written
through these helpers, so an interrupted run (or a full disk) never leaves a half-written
file behind. The files get the mode ``open()`` would give (``0o666`` less the umask, so
0644 under the usual 022), not ``mkstemp``'s private 0600: they are meant to be shared.
"""
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def current_umask() -> int:
    """The process's umask (read by setting it and setting it back)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Replaces ``path`` with ``data`` so readers see the old or the new file, never a mix.

    Writes a temp file in the same directory, fsyncs it and ``os.replace``s it over the
    target; on any error (``ENOSPC`` included) the temp file is removed and the old file
    stays untouched. The new file's mode is ``0o666`` less the umask.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    try:
        with os.fdopen(handle, 'wb') as temp_file:
            temp_file.write(data)
            temp_file.flush()
            os.fchmod(temp_file.fileno(), 0o666 & ~current_umask())
            os.fsync(temp_file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """``atomic_write_bytes`` for UTF-8 text."""
    atomic_write_bytes(path, text.encode('utf-8'))


def atomic_write_json(path: str | Path, payload: Any, indent: int | None = 2) -> None:
    """Write ``payload`` as JSON (sorted keys) to ``path`` atomically."""
    atomic_write_text(path, json.dumps(payload, indent=indent, sort_keys=True))
