"""Image/video–text retrieval by BLIP's protocol (ITC top-k, ITM re-rank), as a task plugin.

:func:`evaluate_retrieval` is the task evaluator (``TASKS`` name ``'retrieval'``, used by
``EvaluateStage``);
:class:`RetrievalValLoop`/:class:`RetrievalTestLoop` run it inside an mmengine runner.
"""
from .evaluate import compute_retrieval_scores, evaluate_retrieval
from .loops import RetrievalTestLoop, RetrievalValLoop
from .scores import UNRANKED_SCORE, RetrievalScores
from . import paper_tables  # noqa: F401  (registers PAPER_TABLES)

__all__ = ['compute_retrieval_scores', 'evaluate_retrieval', 'RetrievalValLoop',
           'RetrievalTestLoop', 'RetrievalScores', 'UNRANKED_SCORE']
