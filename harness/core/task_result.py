"""The evaluator contract: what every task evaluator takes and the one typed result it returns.

A task evaluator is a callable registered in ``TASKS``::

    @TASKS.register_module(name='mytask')
    def evaluate_mytask(model, dataset, *, device, work_dir=None, cache_key=None,
                        **options) -> TaskResult: ...

``model`` satisfies :class:`harness.core.model_api.VisionLanguageModel`; ``work_dir`` (may
be None) is where the evaluator caches and resumes; ``cache_key`` names the weights (a
checkpoint identity) so cached outputs of other weights are never reused. Results records,
boards and the score gate read units and directions from the :class:`Metric` values, never
from metric names. mmengine loops and metrics are thin adapters over the same evaluators.
"""
import dataclasses
from typing import Any, Mapping, Optional, Protocol

PERCENT = '%'
TIMES_100 = '×100'  # caption metrics as papers quote them (BLEU, METEOR, ROUGE-L, CIDEr, SPICE)
RANK = 'rank'  # e.g. median rank: lower is better


@dataclasses.dataclass(frozen=True)
class Metric:
    """One score: its value (None when it could not be computed), unit and direction."""

    value: Optional[float]
    unit: str = ''
    higher_is_better: bool = True


@dataclasses.dataclass
class TaskResult:
    """The outcome of one evaluation of one model on one dataset split.

    Attributes:
        metrics: name -> :class:`Metric`.
        per_sample: metric -> {sample id: score}; a metric's corpus score is the mean of
            these, which makes paired bootstrap tests between variants valid.
        throughput: unit (``'images/s'``, ``'ITM pairs/s per process'``) -> rate; empty when
            everything came from a cache.
        unavailable: metric -> why it could not be computed (boards list these).
        counts: what was evaluated, e.g. ``{'images': 200, 'texts': 1000}``.
        baselines: metric -> the score of a trivial answerer on the same samples (VQA: the
            most frequent answer for every question), which boards draw like a chance
            level; ``baseline_basis`` says what the answerer is, and
            ``baseline_per_sample`` (metric -> {sample id: score}) its per-sample scores, so
            boards can test a model against it on the same samples.
        outputs: task outputs that are not scores (predictions, corpora, paths); not
            stored in results records.
    """

    metrics: dict[str, Metric]
    per_sample: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    throughput: dict[str, float] = dataclasses.field(default_factory=dict)
    unavailable: dict[str, str] = dataclasses.field(default_factory=dict)
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    baselines: dict[str, float] = dataclasses.field(default_factory=dict)
    baseline_basis: str = ''
    baseline_per_sample: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    outputs: dict[str, Any] = dataclasses.field(default_factory=dict)

    def values(self) -> dict[str, Optional[float]]:
        """Metric name -> value."""
        return {name: metric.value for name, metric in self.metrics.items()}

    def units(self) -> dict[str, str]:
        """Metric name -> unit label (``'%'``, ``'×100'``, ``''``...)."""
        return {name: metric.unit for name, metric in self.metrics.items()}

    def directions(self) -> dict[str, bool]:
        """Metric name -> whether higher is better."""
        return {name: metric.higher_is_better for name, metric in self.metrics.items()}


def metrics_in(values: Mapping[str, Optional[float]], unit: str = '',
               higher_is_better: bool = True) -> dict[str, Metric]:
    """:class:`Metric` entries for several values that share one unit and direction."""
    return {name: Metric(None if value is None else float(value), unit, higher_is_better)
            for name, value in values.items()}


class TaskEvaluator(Protocol):
    """The signature every ``TASKS`` entry has (see the module docstring)."""

    def __call__(self, model: Any, dataset: Any, *, device: Any, work_dir: Any = None,
                 cache_key: Optional[str] = None, **options: Any) -> TaskResult:
        """Evaluate ``model`` on ``dataset``."""
