"""Loading configs: ``_base_`` inheritance, ``--cfg-options``, variants and references.

Configs are mmengine Python configs (code, and the user's own). A config refers to another
of its top-level values in one way only, ``'${name}'``, resolved late (after ``_base_``
merging, ``--cfg-options`` and a variant's overrides), so a changed value reaches every place
that refers to it:

* as the whole string, ``dataset='${caption_test_dataset}'``, the referenced value (any type,
  a copy) replaces the string;
* inside a string, ``'${data_root}/annotations/coco_karpathy_test.json'``, its ``str()`` is
  interpolated (a value that is ``None`` fails, naming the ``--cfg-options`` to set).

References inside the referenced value are resolved too. A reference to a key the config
does not define fails, naming the key and the config file.

``data_root`` alone says where data is. It is a folder path, or the name of a data source
registered in :data:`harness.core.registry.DATA_SOURCES` (``'toyworld'``: the embedded
ToyWorld); a source is called with the config value of the same name as its spec (e.g.
``toyworld=dict(seed=0, n_train=800)``) and ``<name>_dir`` (when set) as the folder to make
it in, and returns the folder. ``'${data_root}'`` always yields the folder: readers, the
tokenizer's vocabulary and metric ground-truth files all refer to it.
"""
import copy
import re
from pathlib import Path
from typing import Any, Optional

from mmengine.config import Config, DictAction  # noqa: F401  (DictAction re-exported)

from harness.core.registry import DATA_SOURCES
from harness.core.tree import deep_merge, map_leaves, to_plain  # noqa: F401  (re-exported)

REFERENCE = re.compile(r'\$\{(\w+)\}')
SOURCE_NAME = re.compile(r'\w+')  # a data_root that could name a source (not a path)


def config_file(cfg: dict) -> str:
    """The file a config was loaded from, for error messages."""
    return cfg.get('_config_file') or 'the config'


def data_root_folder(cfg: dict) -> str:
    """The folder ``cfg['data_root']`` names, generating a registered data source's data."""
    data_root = cfg.get('data_root')
    if data_root is None:
        raise ValueError(f'{config_file(cfg)} refers to ${{data_root}} but sets no `data_root`; '
                         f'pass --cfg-options data_root=/path/on/this/machine (or '
                         f'data_root=toyworld for the embedded ToyWorld)')
    if not SOURCE_NAME.fullmatch(str(data_root)):
        return str(Path(data_root).expanduser())
    source = DATA_SOURCES.get(data_root)
    if source is not None:
        return str(source(cfg.get(data_root) or {}, root=cfg.get(f'{data_root}_dir')))
    if not Path(data_root).is_dir():  # a bare word: most likely a misspelt source name
        raise ValueError(f'{config_file(cfg)}: data_root={data_root!r} is neither a registered '
                         f'data source ({", ".join(sorted(DATA_SOURCES.module_dict))}) nor a '
                         f'folder; pass a path or a source name')
    return data_root


def resolve_references(value: Any, cfg: dict) -> Any:
    """``value`` with every ``${name}`` in its strings resolved against ``cfg``.

    Experiment stage lists and leaderboards are resolved this way against the variant's
    config, so variants and ``--cfg-options`` that change ``cfg[name]`` reach every stage.
    """
    resolved = {}  # name -> its resolved value, so each key is resolved (and generated) once
    pending = []   # names being resolved, to report a cycle instead of recursing forever

    def lookup(name: str, text: str) -> Any:
        if name not in cfg:
            raise KeyError(f'{text!r} refers to `{name}`, which {config_file(cfg)} does not '
                           f'define; add it (e.g. in a _base_ dataset or schedule config)')
        if name in pending:
            raise ValueError(f'{config_file(cfg)}: the references '
                             f'{" -> ".join(pending[pending.index(name):] + [name])} form a '
                             f'cycle; make one of them a value')
        if name not in resolved:
            pending.append(name)
            resolved[name] = data_root_folder(cfg) if name == 'data_root' else \
                map_leaves(cfg[name], resolve)
            pending.pop()
        return copy.deepcopy(resolved[name])

    def interpolate(name: str, text: str) -> str:
        found = lookup(name, text)
        if found is None:
            raise ValueError(f'{text!r} (in {config_file(cfg)}) interpolates `{name}`, which '
                             f'is not set; pass --cfg-options {name}=...')
        return str(found)

    def resolve(leaf: Any) -> Any:
        if not isinstance(leaf, str):
            return leaf
        whole = REFERENCE.fullmatch(leaf)
        if whole:
            return lookup(whole.group(1), leaf)
        return REFERENCE.sub(lambda match: interpolate(match.group(1), leaf), leaf)

    return map_leaves(value, resolve)


def resolve_config(cfg: dict) -> dict:
    """``cfg`` with ``data_root`` made a folder and every reference resolved (see above)."""
    if cfg.get('data_root') is None:
        return resolve_references(cfg, cfg)
    # data_root resolved as a reference to itself: the folder, made once for every user.
    return resolve_references(dict(cfg, data_root='${data_root}'), cfg)


def load_config(path: str, cfg_options: Optional[dict] = None) -> dict:
    """Read a Python config (with ``_base_``), apply ``--cfg-options`` and return a plain dict."""
    config = Config.fromfile(path)
    if cfg_options:
        config.merge_from_dict(cfg_options)
    plain = to_plain(config._cfg_dict)
    plain['_config_file'] = str(Path(path).resolve())
    return plain
