"""Finding or generating a ToyWorld data root, safely under concurrent callers.

A root is complete when its ``DONE`` marker exists and its ``toyworld_spec.json`` equals the
requested spec. Generation writes into a temporary sibling folder that is renamed into place
at the end, so readers never see a half-written root.
"""
import json
import logging
import os
import pathlib
import shutil
import tempfile
import time
from typing import Optional, Union

from harness.core.user_cache import user_cache_folder

from .spec import ToyWorldSpec
from .writer import DONE_FILE, SPEC_FILE, generate_toyworld

logger = logging.getLogger(__name__)


def default_cache_folder() -> pathlib.Path:
    """``$XDG_CACHE_HOME/blip_harness/toyworld`` (``~/.cache`` when the variable is unset)."""
    return user_cache_folder('toyworld')


def default_root(spec: ToyWorldSpec) -> pathlib.Path:
    """The cache folder of ``spec``: one sub-folder per spec hash."""
    return default_cache_folder() / spec.digest()


def is_complete(root: pathlib.Path, spec: ToyWorldSpec) -> bool:
    """Whether ``root`` holds a finished ToyWorld generated from ``spec``."""
    try:
        stored = json.loads((root / SPEC_FILE).read_text())
    except (OSError, ValueError):
        return False
    return (root / DONE_FILE).is_file() and stored == spec.to_dict()


def _check_replaceable(root: pathlib.Path) -> None:
    if root.exists() and not (root / SPEC_FILE).is_file() and any(root.iterdir()):
        raise FileExistsError(
            f'{root} exists, is not empty and is not a ToyWorld data root (no {SPEC_FILE}); '
            'refusing to overwrite it. Fix: pass another root or empty that folder.')


def _move_into_place(fresh: pathlib.Path, root: pathlib.Path, spec: ToyWorldSpec) -> None:
    """Rename ``fresh`` to ``root``, replacing a stale or empty root."""
    if root.exists():
        if is_complete(root, spec):  # another process finished first
            shutil.rmtree(fresh)
            return
        stale = pathlib.Path(tempfile.mkdtemp(prefix=f'.{root.name}.stale-', dir=root.parent))
        os.replace(root, stale / 'old')
        shutil.rmtree(stale)
    os.replace(fresh, root)


def ensure_toyworld(spec: Optional[ToyWorldSpec] = None,
                    root: Union[str, os.PathLike, None] = None) -> pathlib.Path:
    """Return a ToyWorld data root for ``spec``, generating it only when missing or stale.

    Args:
        spec: what to generate; the default :class:`ToyWorldSpec` when None.
        root: where; the per-spec cache folder (see :func:`default_root`) when None.
    """
    spec = spec or ToyWorldSpec()
    root = pathlib.Path(root).expanduser().resolve() if root else default_root(spec)
    if is_complete(root, spec):
        return root
    _check_replaceable(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    fresh = pathlib.Path(tempfile.mkdtemp(prefix=f'.{root.name}.tmp-', dir=root.parent))
    try:
        fresh.chmod(0o755)
        started = time.perf_counter()
        generate_toyworld(spec, fresh)
        _move_into_place(fresh, root, spec)
        logger.info('generated ToyWorld in %s (%.1f s)', root, time.perf_counter() - started)
    finally:
        if fresh.exists():
            shutil.rmtree(fresh)
    return root
