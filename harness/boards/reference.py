"""Our variants against the paper's table: its values per variant and the rank agreement.

Boards run proxies (ToyWorld, small models), so only the *ordering* of variants can be
compared with the paper. The agreement of the two orderings on a metric is Kendall's τ-b
(``scipy.stats.kendalltau``) between our mean over seeds and the paper's value, over the
variants both have: +1 is the same order, −1 the reverse. With few variants the test has
little power: for 4 variants the smallest two-sided p is 2/24 ≈ 0.083.
"""
import dataclasses
import math
from collections.abc import Sequence

from harness.boards.aggregate import MetricKey, mean_std, records_by_variant, seed_values
from harness.boards.spec import BoardSpec
from harness.core.paper import PaperTable, paper_reference
from harness.results import ResultRecord


def paper_table(spec: BoardSpec) -> PaperTable | None:
    """The ablation table the board names (None for none or for the headline numbers)."""
    if not spec.paper_reference:
        return None
    reference = paper_reference(spec.paper_reference)
    return reference if isinstance(reference, PaperTable) else None


def paper_values(table: PaperTable | None, key: MetricKey) -> dict[str, float]:
    """The paper's value of ``key``'s metric per variant (rows whose ``variant`` names ours),
    for a table of the same task; empty when the table has none."""
    if table is None or table.task != key[0]:
        return {}
    return {row.variant: row.metrics[key[3]] for row in table.rows if key[3] in row.metrics}


@dataclasses.dataclass(frozen=True)
class RankAgreement:
    """Kendall's τ-b of our ordering against the paper's on one metric, its two-sided
    p-value (NaN when either side is constant) and the variants compared."""

    key: MetricKey
    tau: float
    p_value: float
    variants: tuple[str, ...]

    @property
    def defined(self) -> bool:
        """False when all values on one side are equal, so neither ordering exists."""
        return not math.isnan(self.tau)


def rank_agreement(key: MetricKey, spec: BoardSpec, records: Sequence[ResultRecord],
                   table: PaperTable | None) -> RankAgreement | None:
    """τ between our means and the paper's values over the variants both have; None with
    fewer than 2 such variants."""
    by_variant = records_by_variant(records, key)
    paper = paper_values(table, key)
    variants = tuple(v for v in spec.variant_order if v in by_variant and v in paper)
    if len(variants) < 2:
        return None
    ours = [mean_std(seed_values(by_variant[v], key[3]))[0] for v in variants]
    from scipy import stats  # here, not at the top: only a board needs SciPy (0.7 s to import)
    result = stats.kendalltau(ours, [paper[v] for v in variants])
    return RankAgreement(key, float(result.statistic), float(result.pvalue), variants)


def board_agreements(spec: BoardSpec, records: Sequence[ResultRecord]) -> list[RankAgreement]:
    """The rank agreement of every primary metric the board's paper table also reports."""
    table = paper_table(spec)
    found = (rank_agreement(key, spec, records, table) for key in spec.primary_metrics)
    return [agreement for agreement in found if agreement is not None]
