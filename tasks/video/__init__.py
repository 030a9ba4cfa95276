"""Zero-shot video tasks: BLIP's text-video retrieval on MSRVTT-format clip sets.

:mod:`.frames` samples and decodes frames (BLIP's rule), :mod:`.clips` surveys a clip set,
:func:`evaluate_video_retrieval` is the ``'video_retrieval'`` task evaluator.
"""
from .evaluate import evaluate_video_retrieval
from . import paper_tables  # noqa: F401  (registers PAPER_TABLES)

__all__ = ['evaluate_video_retrieval']
