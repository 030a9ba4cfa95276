"""Captioning task plugin: batched caption generation + COCO caption metrics."""
from .evaluate import evaluate_caption  # noqa: F401
