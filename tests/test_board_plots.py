"""What the board's plot shows: error bars, chance levels, paper markers and rank agreement,
and which metrics it leaves to the tables."""
import itertools
import math

import numpy as np
import pytest

from harness.boards.chance import chance_level, recall_chance
from harness.boards.panels import NO_ERROR_BARS, board_panels
from harness.boards.plot import panel_title, render_plot
from harness.boards.spec import BoardSpec
from harness.leaderboard import render_leaderboard
from harness.results import ResultRecord

SHARING = ['all', 'all_but_ca', 'all_but_sa', 'none']
# Paper (Table 3): CIDEr 125.9 < 126.1 < 127.4 (none) < 127.8 (all_but_sa);
# BLEU-4 37.2 < 37.4 < 37.8 (none) < 38.0 (all_but_sa).
CIDER_SAME_ORDER = {'all': 100.0, 'all_but_ca': 100.5, 'all_but_sa': 110.0, 'none': 108.0}
BLEU_REVERSED = {'all': 4.0, 'all_but_ca': 3.0, 'all_but_sa': 1.0, 'none': 2.0}
SPEC = dict(title='Sharing', paper_reference='sharing', variant_order=SHARING,
            primary_metrics=[('caption', 'toyworld_coco', 'test', 'CIDEr'),
                             ('caption', 'toyworld_coco', 'test', 'BLEU-4'),
                             ('caption', 'toyworld_coco', 'test', 'SPICE')])


def _record(variant, metrics, *, seed=0, per_sample=None, counts=None, task='caption',
            dataset='toyworld_coco', units=None):
    return ResultRecord(experiment='board', variant=variant, task=task, dataset=dataset,
                        split='test', metrics=metrics, seed=seed, params=1000,
                        units=units or {m: '×100' for m in metrics},
                        extra={'per_sample': per_sample or {}, 'counts': counts or {}})


def _sharing_records(seeds=1):
    return [_record(v, {'CIDEr': CIDER_SAME_ORDER[v] + 0.3 * seed,
                        'BLEU-4': BLEU_REVERSED[v] + 0.1 * seed}, seed=seed)
            for v in SHARING for seed in range(seeds)]


def _panels(records, spec=SPEC):
    return board_panels(BoardSpec.from_config('board', spec, records), records)


# Chance levels ---------------------------------------------------------------------------

def _brute_force_text_recall(texts, per_image, k):
    """Share of all top-k text sets that hold at least one of the image's texts."""
    tops = list(itertools.combinations(range(texts), k))
    return sum(any(t < per_image for t in top) for top in tops) / len(tops)


def test_recall_chance_on_known_cases():
    assert recall_chance('IR@1', 1000, 5000) == pytest.approx(0.001)
    assert recall_chance('IR@10', 1000, 5000) == pytest.approx(0.01)
    assert recall_chance('IR@10', 5, 25) == 1.0  # k beyond the images: always a hit
    assert recall_chance('TR@1', 1000, 5000) == pytest.approx(5 / 5000)
    assert recall_chance('TR@5', 5, 10) == pytest.approx(1 - 56 / 252)  # 1 - C(8,5)/C(10,5)
    assert recall_chance('TR@10', 2, 10) == 1.0  # only 5 other texts for 10 places
    for images, per_image, k in ((4, 2, 3), (3, 3, 2), (2, 5, 4), (7, 1, 3)):
        texts = images * per_image
        assert recall_chance(f'TR@{k}', images, texts) == pytest.approx(
            _brute_force_text_recall(texts, per_image, k)), (images, per_image, k)
    for metric in ('CIDEr', 'TR_mean', 'R_mean', 'tr@1', 'TR@'):
        assert recall_chance(metric, 100, 500) is None


def test_chance_level_uses_the_records_counts_and_unit():
    counts = {'images': 100, 'texts': 500}
    same = [_record(v, {'IR@5': 1.0}, counts=counts, units={'IR@5': '%'}) for v in 'ab']
    assert chance_level('IR@5', same, '%') == pytest.approx(5.0)
    assert chance_level('IR@5', same, '×100') is None  # only percentages are supported
    assert chance_level('CIDEr', same, '%') is None
    other = _record('c', {'IR@5': 1.0}, counts={'images': 50, 'texts': 250})
    assert chance_level('IR@5', [*same, other], '%') is None  # different test sets
    assert chance_level('IR@5', [_record('d', {'IR@5': 1.0}, counts={'images': 9})],
                        '%') is None


def test_chance_lines_reach_panels_and_table_notes():
    records = [_record(v, {'TR@1': 40.0 + i, 'TR@5': 60.0 + i, 'IR@1': 30.0 + i},
                       task='retrieval', dataset='toyworld_flickr',
                       counts={'images': 100, 'texts': 500},
                       units={'TR@1': '%', 'TR@5': '%', 'IR@1': '%'})
               for i, v in enumerate(['small', 'large'])]
    panels, _ = _panels(records, None)
    chances = {p.key[3]: p.chance for p in panels}
    assert chances == pytest.approx({'IR@1': 1.0, 'TR@1': 1.0,
                                     'TR@5': 100 * (1 - math.comb(495, 5) / math.comb(500, 5))})
    assert 'chance 4.92 (dashed)' in panel_title(next(p for p in panels if p.key[3] == 'TR@5'))
    board = render_leaderboard('board', records, None)
    assert 'Chance level (a random ranking, from the test-set size): IR@1 1%, TR@1 1%, ' \
           'TR@5 4.92%.' in board
    assert 'Chance level' not in render_leaderboard('board', _sharing_records(), SPEC)


# Error bars ------------------------------------------------------------------------------

def test_single_seed_error_bars_are_bootstrap_intervals_of_the_mean():
    rng = np.random.default_rng(7)
    scores = {v: rng.normal(100 + 5 * i, 20, size=300) for i, v in enumerate(SHARING)}
    records = [_record(v, {'CIDEr': float(s.mean()), 'BLEU-4': 30.0},
                       per_sample={'CIDEr': {str(j): float(x) for j, x in enumerate(s)}})
               for v, s in scores.items()]
    panels, _ = _panels(records)
    cider = next(p for p in panels if p.key[3] == 'CIDEr')
    assert cider.error_kind == '95% bootstrap CI over 300 samples'
    assert cider.means == pytest.approx([float(scores[v].mean()) for v in SHARING])
    for variant, (below, above) in zip(cider.variants, cider.errors):
        values = scores[variant]
        # the same resampling, written out: samples in sorted-id order, seed 0, 2000 draws
        ordered = np.array([values[int(i)] for i in sorted(str(j) for j in range(300))])
        draws = np.random.default_rng(0).integers(0, 300, size=(2000, 300))
        low, high = np.percentile(ordered[draws].mean(axis=1), [2.5, 97.5])
        assert (below, above) == pytest.approx((values.mean() - low, high - values.mean()))
        # and close to the normal interval: 1.96 standard errors either side
        assert below + above == pytest.approx(2 * 1.96 * values.std() / math.sqrt(300),
                                              rel=0.15)
    bleu = next(p for p in panels if p.key[3] == 'BLEU-4')  # no per-sample scores
    assert bleu.errors is None and bleu.error_kind == NO_ERROR_BARS


def test_several_seeds_give_std_error_bars_even_with_per_sample_scores():
    records = _sharing_records(seeds=3)
    for record in records:
        record.extra['per_sample'] = {'CIDEr': {'0': 1.0, '1': 2.0}}
    cider = next(p for p in _panels(records)[0] if p.key[3] == 'CIDEr')
    assert cider.error_kind == '± std over 3 seeds'
    assert np.allclose(cider.errors, 0.3)
    assert cider.means == pytest.approx([CIDER_SAME_ORDER[v] + 0.3 for v in SHARING])
    mixed = [r for r in records if r.variant != 'none' or r.seed == 0]
    for record in mixed:
        record.extra['per_sample'] = {}
    assert _panels(mixed)[0][0].errors is None  # 'none' ran one seed, nothing per sample


# Paper markers and rank agreement --------------------------------------------------------

def test_paper_values_and_kendall_tau_against_the_sharing_table():
    panels, _ = _panels(_sharing_records())
    cider, bleu = panels
    assert cider.paper == {'all': 125.9, 'all_but_ca': 126.1, 'all_but_sa': 127.8,
                           'none': 127.4}
    assert (cider.paper_unit, cider.paper_dataset) == ('×100', 'coco_karpathy')
    assert cider.agreement.tau == pytest.approx(1.0)
    assert cider.agreement.p_value == pytest.approx(2 / 24)  # exact test, 4 variants
    assert bleu.agreement.tau == pytest.approx(-1.0)
    assert "Kendall's τ = +1.00 (p = 0.083, n = 4)" in panel_title(cider)
    board = render_leaderboard('board', _sharing_records(), SPEC)
    section = board.split('## Rank agreement with the paper')[1].split('## ')[0]
    assert '| caption/`toyworld_coco`/test CIDEr | +1.00 | 0.0833 | ' \
           '4 (all, all_but_ca, all_but_sa, none) |' in section
    assert '| caption/`toyworld_coco`/test BLEU-4 | -1.00 | 0.0833 |' in section
    assert board.index('## Paper reference rows') < board.index('## Rank agreement')


def test_rank_agreement_uses_only_shared_variants_and_flags_ties():
    records = [r for r in _sharing_records() if r.variant != 'all_but_ca']
    records.append(_record('extra', {'CIDEr': 50.0, 'BLEU-4': 9.0}))
    for record in records:
        record.metrics['BLEU-4'] = 30.0  # no ordering of ours
    panels, _ = _panels(records)
    assert panels[0].agreement.variants == ('all', 'all_but_sa', 'none')
    assert 'extra' in panels[0].variants and 'extra' not in panels[0].paper
    assert not panels[1].agreement.defined
    section = render_leaderboard('board', records, SPEC).split('## Rank agreement')[1]
    assert '| caption/`toyworld_coco`/test BLEU-4 | undefined (all equal on one side) | — |' \
        in section


def test_no_paper_markers_for_another_task_or_the_headline_numbers():
    records = [_record(v, {'CIDEr': 1.0 + i}, task='retrieval') for i, v in enumerate(SHARING)]
    spec = dict(SPEC, primary_metrics=[('retrieval', 'toyworld_coco', 'test', 'CIDEr')])
    panel = _panels(records, spec)[0][0]
    assert panel.paper == {} and panel.agreement is None
    assert "No primary metric has the paper's value" in render_leaderboard('board', records,
                                                                           spec)
    headline = dict(SPEC, paper_reference='headline')
    assert all(p.agreement is None for p in _panels(_sharing_records(), headline)[0])
    assert '## Rank agreement' not in render_leaderboard('board', _sharing_records(), headline)


# Single-value metrics and the PNG --------------------------------------------------------

def test_a_metric_one_variant_has_goes_to_the_table_not_the_plot():
    records = _sharing_records()
    records[0].metrics['SPICE'] = 21.5  # variant 'all' only
    panels, table_only = _panels(records)
    assert [p.key[3] for p in panels] == ['CIDEr', 'BLEU-4']
    assert table_only == [('caption', 'toyworld_coco', 'test', 'SPICE')]
    board = render_leaderboard('board', records, SPEC)
    assert 'Not plotted, as only one variant has a value (see the tables): ' \
           'caption/`toyworld_coco`/test SPICE.' in board
    table = board.split('### Our runs')[1].split('## ')[0]
    assert '| all | 0.0 | 100.00 | 4.00 | 21.50 |' in table
    assert '| none | 0.0 | 108.00 | 2.00 | — |' in table


def test_png_is_deterministic_and_a_single_variant_board_still_draws():
    records = _sharing_records()
    first = render_plot('board', records, SPEC)
    assert first[:4] == b'\x89PNG' and first == render_plot('board', records, SPEC)
    alone = render_plot('board', records[:1], SPEC)
    assert alone[:4] == b'\x89PNG'
