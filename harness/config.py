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

Mistakes fail before anything runs. A ``--cfg-options`` key whose top-level name the config
does not define fails with the nearest defined names (a misspelt ``pretrain_epoch=1`` would
otherwise set nothing); a dotted key may add a key to an existing dict (e.g.
``model.vision.layer_norm_eps``) and anything below an empty one (``pretrain_init=dict()``).
:func:`check_values` refuses values no run can use (epochs or batch sizes below 1, a
negative learning rate, a retrieval ``k`` below 1).
"""
import copy
import difflib
import inspect
import re
from pathlib import Path
from typing import Any, Iterable, List, Mapping, Optional

from mmengine.config import Config, DictAction  # noqa: F401  (DictAction re-exported)
from mmengine.runner import Runner

from harness.core.registry import DATA_SOURCES
from harness.core.tree import deep_merge, map_leaves, to_plain  # noqa: F401  (re-exported)

REFERENCE = re.compile(r'\$\{(\w+)\}')
SOURCE_NAME = re.compile(r'\w+')  # a data_root that could name a source (not a path)
# Top-level keys a config need not define to be set: mmengine Runner arguments, the
# harness's own (run.py's work_dir and init_checkpoint, the experiment's leaderboard_dir)
# and, for every registered data source NAME, NAME (its spec) and NAME_dir (its folder).
HARNESS_KEYS = ('work_dir', 'leaderboard_dir', 'init_checkpoint')
RUNNER_ARGUMENTS = tuple(inspect.signature(Runner.__init__).parameters)[1:]
# Values no run can use, by key name anywhere in a resolved config or stage:
# (name pattern, smallest allowed value, whether it must be a whole number).
VALUE_RULES = (
    (re.compile(r'max_epochs|max_iters|(?!warmup_)\w+_epochs'), 1, True),
    (re.compile(r'(\w+_)?batch_size'), 1, True),
    (re.compile(r'(\w+_)?lr'), 0, False),
    (re.compile(r'(retrieval_)?k'), 1, True),
)


def config_file(cfg: dict) -> str:
    """The file a config was loaded from, for error messages."""
    return cfg.get('_config_file') or 'the config'


def data_source_name(data_root: Any) -> Optional[str]:
    """``data_root`` when it names a registered data source, else None (a folder)."""
    if isinstance(data_root, str) and SOURCE_NAME.fullmatch(data_root) and \
            DATA_SOURCES.get(data_root) is not None:
        return data_root
    return None


def data_root_folder(cfg: dict) -> str:
    """The folder ``cfg['data_root']`` names, generating a registered data source's data."""
    data_root = cfg.get('data_root')
    if data_root is None:
        raise ValueError(f'{config_file(cfg)} refers to ${{data_root}} but sets no `data_root`; '
                         f'pass --cfg-options data_root=/path/on/this/machine (or '
                         f'data_root=toyworld for the embedded ToyWorld)')
    if not SOURCE_NAME.fullmatch(str(data_root)):
        return str(Path(data_root).expanduser())
    if data_source_name(data_root):
        return str(DATA_SOURCES.get(data_root)(cfg.get(data_root) or {},
                                               root=cfg.get(f'{data_root}_dir')))
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


def nearest_names(name: str, candidates: Iterable[str]) -> str:
    """`` (nearest: a, b)`` naming the candidates closest to ``name``, or ``''``."""
    close = difflib.get_close_matches(name, sorted(map(str, candidates)), n=3, cutoff=0.6)
    return f' (nearest: {", ".join(close)})' if close else ''


def optional_key(name: str) -> bool:
    """Whether ``name`` may be set at the top level though the config does not define it."""
    if name in HARNESS_KEYS or name in RUNNER_ARGUMENTS:
        return True
    return data_source_name(name.removesuffix('_dir')) is not None


def option_key_problem(cfg: dict, key: str) -> Optional[str]:
    """Why the ``--cfg-options`` key ``key`` would set nothing ``cfg`` uses (None: it is fine).

    The top-level name must be defined (or :func:`optional_key`); below it each name must
    exist, except the last one of the key (a new key in an existing dict) and anything
    below an empty dict.
    """
    top, *rest = key.split('.')
    if top not in cfg:
        return None if optional_key(top) else \
            f'`{top}` is not a key of the config{nearest_names(top, cfg)}'
    node, path = cfg[top], top
    for index, part in enumerate(rest):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, dict):
            if index == len(rest) - 1 or not node:
                return None
            return f'`{path}` has no key `{part}`{nearest_names(part, node)}'
        elif isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, (list, tuple)):
            return f'`{path}` is a list of {len(node)} items, which has no item `{part}`'
        else:
            return f'`{path}` is {node!r}, not a dict; set `{path}` itself'
        path = f'{path}.{part}'
    return None


def check_option_keys(cfg: dict, cfg_options: Mapping[str, Any], where: str) -> None:
    """Refuse ``--cfg-options`` keys that would set nothing ``cfg`` uses (a misspelt key is
    otherwise ignored without a word), naming the nearest defined names."""
    problems = [f'{key}: {problem}' for key in cfg_options
                for problem in [option_key_problem(cfg, key)] if problem]
    if problems:
        raise KeyError(f'--cfg-options {"; ".join(problems)} in {where}; fix the name (run.py '
                       f'--print-config lists the keys)')


def impossible_values(value: Any, path: str = '') -> List[str]:
    """``'path = value (must be ...)'`` for every leaf below ``value`` that breaks a
    :data:`VALUE_RULES` rule (``None`` means unset and passes)."""
    if isinstance(value, (list, tuple)):
        return [problem for index, item in enumerate(value)
                for problem in impossible_values(item, f'{path}[{index}]')]
    if not isinstance(value, dict):
        return []
    found = []
    for key, item in value.items():
        here = f'{path}.{key}' if path else str(key)
        for pattern, minimum, whole in VALUE_RULES:
            if not pattern.fullmatch(str(key)) or item is None or \
                    isinstance(item, (dict, list, tuple)):
                continue
            kind = (int,) if whole else (int, float)
            if isinstance(item, bool) or not isinstance(item, kind) or item < minimum:
                found.append(f'{here} = {item!r} (must be a {"whole " if whole else ""}'
                             f'number >= {minimum})')
        found += impossible_values(item, here)
    return found


def check_values(value: Any, where: str) -> None:
    """Refuse a resolved config (or stage config) holding values no run can use, naming
    each key; call it before anything runs."""
    problems = impossible_values(value)
    if problems:
        raise ValueError(f'{where}: {"; ".join(problems)}; set possible values (e.g. with '
                         f'--cfg-options KEY=VALUE)')


def load_config(path: str, cfg_options: Optional[dict] = None) -> dict:
    """Read a Python config (with ``_base_``), apply ``--cfg-options`` and return a plain dict.

    An option key that sets nothing the config uses fails (:func:`check_option_keys`).
    """
    config = Config.fromfile(path)
    if cfg_options:
        check_option_keys(to_plain(config._cfg_dict), cfg_options, path)
        config.merge_from_dict(cfg_options)
    plain = to_plain(config._cfg_dict)
    plain['_config_file'] = str(Path(path).resolve())
    return plain
