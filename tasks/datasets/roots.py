"""Turning a reader's ``data_root`` into a folder.

Configs hand readers a folder (``data_root='${data_root}'``, resolved by the harness). A
reader built by hand may instead be given the name of a registered data source
(``'toyworld'``), which stands for that source's data at its default spec, so no
machine-specific path is needed. The sources are found through
:data:`harness.core.registry.DATA_SOURCES`, so importing the readers does not import the
ToyWorld generator.
"""
import os
import pathlib
import re
from typing import Union

from harness.core.registry import DATA_SOURCES

SOURCE_NAME = re.compile(r'\w+')  # a data_root that could name a source (not a path)


def resolve_data_root(data_root: Union[str, os.PathLike]) -> pathlib.Path:
    """The folder ``data_root`` names: a path, or a registered data source's name."""
    if isinstance(data_root, str) and SOURCE_NAME.fullmatch(data_root):
        source = DATA_SOURCES.get(data_root)
        if source is not None:
            return pathlib.Path(source({}))
    return pathlib.Path(data_root).expanduser()
