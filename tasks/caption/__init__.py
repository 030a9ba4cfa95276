"""Captioning task plugin: batched caption generation + COCO caption metrics."""
from .evaluate import evaluate_caption  # noqa: F401
from . import paper_tables  # noqa: F401  (registers PAPER_TABLES)
