"""Turning a config's ``data_root`` into a folder, including the embedded ToyWorld.

``data_root='toyworld'`` (default spec) or ``'toyworld:tiny'`` means "the cached ToyWorld,
generated on first use", so configs for the embedded data need no machine-specific path.
"""
import os
import pathlib
from typing import Union

from ..toyworld import ToyWorldSpec, ensure_toyworld

TOYWORLD_ROOTS = {'toyworld': ToyWorldSpec, 'toyworld:tiny': ToyWorldSpec.tiny}


def resolve_data_root(data_root: Union[str, os.PathLike]) -> pathlib.Path:
    """The folder ``data_root`` names (a path, or one of :data:`TOYWORLD_ROOTS`)."""
    if isinstance(data_root, str) and data_root in TOYWORLD_ROOTS:
        return ensure_toyworld(TOYWORLD_ROOTS[data_root]())
    return pathlib.Path(data_root).expanduser()
