"""Looking inside a model: ITM Grad-CAM and decoder cross-attention maps, and a pointing game.

* :mod:`.maps` computes per-token maps through the model's cross-attention capture;
* :mod:`.pointing` scores a map against an object's box (hit, mass share, chance);
* :mod:`.overlays` draws them (matplotlib, imported when drawing);
* :mod:`.datasets` reads images with texts (``ExplainImages``) or with object boxes
  (``GroundingDataset``);
* :mod:`.evaluate` registers the ``explain`` and ``grounding`` tasks.
"""
from . import datasets  # noqa: F401  (registers DATASETS)
from .evaluate import evaluate_explain, evaluate_grounding  # noqa: F401
