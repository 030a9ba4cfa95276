"""The precision an evaluation runs at: the model's own, under autocast, or with cast weights.

Tasks with ``autocast_dtype`` / ``weights_dtype`` options (retrieval, video retrieval,
captioning, NoCaps) evaluate inside :func:`at_precision`, and name what they ran at in
their result caches with :func:`numeric_precision`, so float32 results and bf16 results
are never served for each other.
"""
import contextlib
import copy
from typing import Iterator, Optional

import torch


def floating_dtype(name: str, option: str) -> torch.dtype:
    """``torch.<name>`` for a floating dtype's name; ValueError naming ``option`` otherwise."""
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"{option}={name!r} is not a torch floating dtype's name: use "
                         f"'bfloat16' or 'float16'")
    return dtype


def numeric_precision(model: torch.nn.Module, device: torch.device) -> str:
    """The precision the model runs at here: the autocast dtype if enabled, else its
    weights' dtype (``'no weights'`` for a model without parameters, such as a test double)."""
    if torch.is_autocast_enabled(device.type):
        return f'autocast-{torch.get_autocast_dtype(device.type)}'
    parameters = getattr(model, 'parameters', None)
    first = next(iter(parameters()), None) if parameters is not None else None
    return str(first.dtype) if first is not None else 'no weights'


@contextlib.contextmanager
def at_precision(model: torch.nn.Module, device: torch.device,
                 autocast_dtype: Optional[str] = None,
                 weights_dtype: Optional[str] = None) -> Iterator[torch.nn.Module]:
    """Yield the model to evaluate at the chosen precision.

    ``autocast_dtype`` (``'bfloat16'``/``'float16'``): ``model`` itself, under
    ``torch.autocast``. ``weights_dtype``: a copy of ``model`` cast to it (every activation
    in that dtype: faster than autocast on GPUs, further from float32); ``model`` is left
    as it was. Both None: ``model`` as it is, under the caller's autocast state.
    """
    if autocast_dtype and weights_dtype:
        raise ValueError(f'autocast_dtype={autocast_dtype!r} and weights_dtype='
                         f'{weights_dtype!r}: choose one (autocast over cast weights does '
                         f'nothing more)')
    if weights_dtype:
        model = copy.deepcopy(model).to(floating_dtype(weights_dtype, 'weights_dtype'))
    if not autocast_dtype:
        yield model
        return
    with torch.autocast(torch.device(device).type,
                        dtype=floating_dtype(autocast_dtype, 'autocast_dtype')):
        yield model
