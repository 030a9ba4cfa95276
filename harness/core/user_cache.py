"""The per-user cache folder the harness keeps derived files in (ToyWorld, derived ground
truths, compiled kernels)."""
import os
import pathlib


def user_cache_folder(name: str) -> pathlib.Path:
    """``$XDG_CACHE_HOME/blip_harness/<name>`` (``~/.cache`` when the variable is unset),
    read when called so that a changed variable takes effect."""
    cache = os.environ.get('XDG_CACHE_HOME') or pathlib.Path.home() / '.cache'
    return pathlib.Path(cache) / 'blip_harness' / name
