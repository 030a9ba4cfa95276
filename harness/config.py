"""Loading configs: ``_base_`` inheritance, ``--cfg-options``, variants and data-root placeholders.

Configs are mmengine Python configs (code, and the user's own). Two placeholders may appear
in any string value and are filled in before anything is built:

* ``{toyworld_root}`` - the embedded ToyWorld data, generated on first use from the
  config's ``toyworld`` spec (a dict of :class:`tasks.toyworld.ToyWorldSpec` fields);
* ``{data_root}`` - the config's ``data_root`` (real COCO/Flickr30K/... directories);
* ``{bert_dir}`` - the config's ``bert_dir`` (a local bert-base-uncased folder: vocab.txt,
  and the weights that initialise the text side).
"""
import copy
import re
from pathlib import Path
from typing import Any, Dict, Optional

from mmengine.config import Config, DictAction  # noqa: F401  (DictAction re-exported)

from harness.core.tree import deep_merge, map_leaves, to_plain  # noqa: F401  (re-exported)

PATH_KEYS = ('data_root', 'bert_dir')
REFERENCE = re.compile(r'^\$\{(\w+)\}$')


def fill_placeholders(value: Any, replacements: Dict[str, str]) -> Any:
    """Replace placeholder substrings in every string inside ``value``."""
    def fill(leaf):
        if isinstance(leaf, str):
            for placeholder, replacement in replacements.items():
                leaf = leaf.replace(placeholder, replacement)
        return leaf
    return map_leaves(value, fill)


def uses_placeholder(value: Any, placeholder: str) -> bool:
    """Whether ``placeholder`` occurs in any string inside ``value``."""
    if isinstance(value, str):
        return placeholder in value
    if isinstance(value, dict):
        return any(uses_placeholder(v, placeholder) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(uses_placeholder(v, placeholder) for v in value)
    return False


def resolve_data_roots(cfg: dict) -> dict:
    """Fill ``{toyworld_root}`` (generating ToyWorld if needed), ``{data_root}``, ``{bert_dir}``."""
    replacements = {}
    if uses_placeholder(cfg, '{toyworld_root}'):
        from tasks.toyworld import ToyWorldSpec, ensure_toyworld  # noqa: PLC0415
        spec = ToyWorldSpec(**cfg.get('toyworld', {}))
        root = ensure_toyworld(spec, root=cfg.get('toyworld_dir'))
        replacements['{toyworld_root}'] = str(root)
    for key in PATH_KEYS:
        placeholder = '{' + key + '}'
        if uses_placeholder(cfg, placeholder):
            if not cfg.get(key):
                raise ValueError(f'the config uses {placeholder} but sets no `{key}`; pass '
                                 f'--cfg-options {key}=/path/on/this/machine')
            replacements[placeholder] = str(Path(cfg[key]).expanduser())
    return fill_placeholders(cfg, replacements)


def resolve_references(value: Any, cfg: dict) -> Any:
    """Replace every ``'${name}'`` string inside ``value`` by (a copy of) ``cfg[name]``.

    Experiment stage lists use these late-bound references so that variants and
    ``--cfg-options`` that change ``cfg[name]`` reach every stage that refers to it.
    """
    def resolve(leaf):
        match = REFERENCE.match(leaf) if isinstance(leaf, str) else None
        if not match:
            return leaf
        if match.group(1) not in cfg:
            raise KeyError(f'{leaf!r} refers to `{match.group(1)}`, which the config does not '
                           f'define; add it (e.g. in a _base_ dataset or schedule config)')
        return resolve_references(copy.deepcopy(cfg[match.group(1)]), cfg)
    return map_leaves(value, resolve)


def load_config(path: str, cfg_options: Optional[dict] = None) -> dict:
    """Read a Python config (with ``_base_``), apply ``--cfg-options`` and return a plain dict."""
    config = Config.fromfile(path)
    if cfg_options:
        config.merge_from_dict(cfg_options)
    plain = to_plain(config._cfg_dict)
    plain['_config_file'] = str(Path(path).resolve())
    return plain
