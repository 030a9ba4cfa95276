"""Captioning task plugin: batched caption generation + COCO caption metrics, and NoCaps."""
from . import paper_tables  # noqa: F401  (registers PAPER_TABLES)
from .evaluate import evaluate_caption  # noqa: F401
from .nocaps import evaluate_nocaps  # noqa: F401
from .nocaps_dataset import NoCapsEvalDataset  # noqa: F401
