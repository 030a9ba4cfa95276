"""Make mmengine's own checkpoints load under torch's ``weights_only=True`` default.

torch >= 2.6 refuses to unpickle anything but tensors and plain containers. mmengine 0.10.7
stores its message hub in checkpoints as ``HistoryBuffer`` objects whose pickles call
``getattr`` (which must never be allow-listed: it would let a file run code), plus numpy
arrays and scalars. So:

* :class:`PlainCheckpointMetaHook` stores the message hub's buffers as plain lists when a
  checkpoint is saved and rebuilds them when one is loaded (``--resume``);
* :func:`harness.core.safe_globals.register_mmengine_safe_globals` allow-lists only numpy's
  array/scalar/dtype reconstruction, never a global switch to ``weights_only=False``.
"""
import numpy as np
from mmengine.hooks import Hook
from mmengine.logging.history_buffer import HistoryBuffer

from harness.core.registry import HOOKS
from harness.core.tree import map_leaves

_PLAIN_BUFFER_TAG = '__history_buffer__'


def buffer_to_plain(buffer: HistoryBuffer) -> dict:
    """A ``HistoryBuffer`` as a dict of plain lists (weights-only loadable)."""
    return {_PLAIN_BUFFER_TAG: True, 'log_history': buffer._log_history.tolist(),
            'count_history': buffer._count_history.tolist(), 'max_length': buffer.max_length}


def plain_to_buffer(plain: dict) -> HistoryBuffer:
    """The ``HistoryBuffer`` that :func:`buffer_to_plain` stored."""
    return HistoryBuffer(plain['log_history'], plain['count_history'], plain['max_length'])


def numpy_scalars_to_python(value):
    """``value`` with every numpy scalar (e.g. a best score) turned into a Python number."""
    return map_leaves(value, lambda leaf: leaf.item() if isinstance(leaf, np.generic) else leaf)


@HOOKS.register_module()
class PlainCheckpointMetaHook(Hook):
    """Save mmengine's message hub and meta as plain data; rebuild the buffers on load."""

    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Replace ``HistoryBuffer`` objects by plain dicts and numpy scalars by numbers."""
        scalars = checkpoint.get('message_hub', {}).get('log_scalars', {})
        for key, value in scalars.items():
            if isinstance(value, HistoryBuffer):
                scalars[key] = buffer_to_plain(value)
        for section in ('meta', 'message_hub'):
            if section in checkpoint:
                checkpoint[section] = numpy_scalars_to_python(checkpoint[section])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Turn the plain dicts back into ``HistoryBuffer`` objects before mmengine reads them."""
        scalars = checkpoint.get('message_hub', {}).get('log_scalars', {})
        for key, value in scalars.items():
            if isinstance(value, dict) and value.get(_PLAIN_BUFFER_TAG):
                scalars[key] = plain_to_buffer(value)
