"""Image and text encoders and the BLIP model family (MED, heads, losses).

Importing this package registers every model piece in :mod:`harness.core.registry`.
"""
from . import blip, checkpoint, data_preprocessor, open_clip_tower, tokenizer, vit  # noqa: F401
