"""Helpers on plain config trees (nested dicts and lists): merge, map, convert."""
import copy
from typing import Any

from mmengine.config import ConfigDict


def deep_merge(base: dict, override: dict) -> dict:
    """Recursively merge ``override`` into a copy of ``base`` (dicts merge, all else replaces).

    An override dict with ``_delete_=True`` replaces the base dict instead of merging (at
    any depth, ``override`` itself included).
    """
    if override.get('_delete_', False):
        return {k: copy.deepcopy(v) for k, v in override.items() if k != '_delete_'}
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) \
                and not value.get('_delete_', False):
            merged[key] = deep_merge(merged[key], value)
        else:
            value = copy.deepcopy(value)
            if isinstance(value, dict):
                value = {k: v for k, v in value.items() if k != '_delete_'}
            merged[key] = value
    return merged


def to_plain(value: Any) -> Any:
    """A deep copy of ``value`` with every ``ConfigDict`` turned into a plain ``dict``."""
    if isinstance(value, (dict, ConfigDict)):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_plain(v) for v in value)
    return value


def map_leaves(value: Any, function) -> Any:
    """``value`` with ``function`` applied to every non-container leaf (dicts, lists, tuples
    are rebuilt; ``function`` decides what to do with each leaf)."""
    if isinstance(value, dict):
        return {k: map_leaves(v, function) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(map_leaves(v, function) for v in value)
    return function(value)
