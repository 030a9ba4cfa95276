"""Visual question answering: VQAv2 (official accuracy) and GQA (exact match) with BLIP's
VQA model, by ranking a candidate answer list (BLIP's VQAv2 protocol) or by generating.

* :mod:`.answering` answers every question of a dataset (batched, sharded, resumable);
* :mod:`.evaluate` registers the ``vqa`` and ``gqa`` evaluators (with the majority-answer
  baselines of :mod:`tasks.metrics.vqa_baselines` beside the model's accuracy);
* :mod:`.paper_tables` holds the BLIP paper's VQA rows.
"""
from . import paper_tables  # noqa: F401  (registers PAPER_TABLES)
from .evaluate import evaluate_gqa, evaluate_vqa  # noqa: F401
