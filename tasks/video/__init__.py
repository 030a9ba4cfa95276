"""Zero-shot video tasks: BLIP's text-video retrieval and video QA on MSRVTT-format clips.

:mod:`tasks.datasets.video_frames` samples and decodes frames (BLIP's rule), :mod:`.clips`
surveys a clip set, :func:`evaluate_video_retrieval` is the ``'video_retrieval'`` task
evaluator and :func:`evaluate_video_qa` the ``'video_qa'`` one (the VQA model on
concatenated frames).
"""
from .evaluate import evaluate_video_retrieval
from .qa import evaluate_video_qa
from . import paper_tables  # noqa: F401  (registers PAPER_TABLES)

__all__ = ['evaluate_video_qa', 'evaluate_video_retrieval']
