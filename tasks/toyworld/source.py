"""ToyWorld as a registered data source: a config's ``data_root='toyworld'`` names it.

The harness calls the source with the config's ``toyworld`` dict (:class:`ToyWorldSpec`
fields) and ``toyworld_dir`` (where to keep it; the per-spec cache folder when unset), and
gets the data root, generated on first use.
"""
import os
import pathlib
from typing import Optional, Union

from harness.core.registry import DATA_SOURCES

from .cache import ensure_toyworld
from .spec import ToyWorldSpec


@DATA_SOURCES.register_module('toyworld')
def toyworld_data_root(spec: Optional[dict] = None,
                       root: Union[str, os.PathLike, None] = None) -> pathlib.Path:
    """The ToyWorld data root for ``spec`` (ToyWorldSpec fields; defaults when empty)."""
    return ensure_toyworld(ToyWorldSpec(**(spec or {})), root=root)
