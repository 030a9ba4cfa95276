"""The keys of on-disk result caches: which model, which inputs, which settings.

Every evaluation that reuses results from its work dir (predictions, retrieval scores)
keys them by all three, so a changed checkpoint, image size, preprocessing, annotation file
or decoding setting is computed anew instead of being served stale results.
"""
import hashlib
import json
from pathlib import Path
from typing import Optional, Union

import torch


def settings_hash(settings) -> str:
    """16 hex digits identifying a JSON-able description."""
    return hashlib.blake2b(json.dumps(settings).encode(), digest_size=8).hexdigest()


def model_fingerprint(model: torch.nn.Module) -> str:
    """A hash of every parameter and buffer of ``model`` (names, shapes, dtypes, values)."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in model.state_dict().items():
        digest.update(f'{name}:{tuple(tensor.shape)}:{tensor.dtype};'.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def results_key(model: torch.nn.Module, cache_key: Optional[str],
                work_dir: Optional[Union[str, Path]]) -> Optional[str]:
    """The model's name in the caches: ``cache_key`` (e.g. a checkpoint hash) if given, else,
    when results are cached at all (``work_dir`` set), :func:`model_fingerprint`."""
    if cache_key is not None or work_dir is None:
        return cache_key
    if not hasattr(model, 'state_dict'):
        raise ValueError(f'results under work_dir={str(work_dir)!r} are cached by the model\'s '
                         f'identity, and a {type(model).__name__} has no weights to hash: pass '
                         f'cache_key=... (e.g. a hash of its checkpoint), or work_dir=None to '
                         f'cache nothing')
    return model_fingerprint(model)


def dataset_identity(dataset) -> str:
    """``dataset.inputs_identity()`` where the dataset has one (every reader of
    :mod:`tasks.datasets` does: images, preprocessing, annotation files), else a hash of its
    class and length."""
    identify = getattr(dataset, 'inputs_identity', None)
    if identify is not None:
        return identify()
    return settings_hash(dict(reader=type(dataset).__name__, length=len(dataset)))
