"""The only globals ``torch.load(weights_only=True)`` may meet in mmengine's checkpoints.

mmengine's checkpoints hold numpy arrays and scalars (best scores, message-hub history);
their reconstruction functions are allow-listed here, nothing else, and never a global
switch to ``weights_only=False``: a checkpoint that needs more is refused.
"""
import numpy as np
import torch


def _numpy_globals():
    core = np._core if hasattr(np, '_core') else np.core
    dtype_classes = [type(np.dtype(name)) for name in
                     ('float64', 'float32', 'float16', 'int64', 'int32', 'int8', 'uint8', 'bool')]
    return [np.ndarray, np.dtype, core.multiarray._reconstruct, core.multiarray.scalar,
            *dtype_classes]


def register_mmengine_safe_globals() -> None:
    """Allow-list numpy's reconstruction types for ``torch.load(weights_only=True)``."""
    torch.serialization.add_safe_globals(_numpy_globals())
