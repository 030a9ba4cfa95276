"""Leaderboard writer: variants × seeds, units, paper rows, significance, plot, index."""
import datetime

import pytest

from harness.boards.stats import holm_adjust, paired_bootstrap, welch_p_value
from harness.core.paper import PaperTable, paper_reference
from harness.leaderboard import main, render_leaderboard, write_index, write_leaderboard
from harness.results import ResultRecord, append_record

SHARING_SPEC = dict(
    title='Parameter sharing (ToyWorld)',
    description='Encoder/decoder sharing policies on ToyWorld captioning.',
    primary_metrics=[('caption', 'toyworld_coco', 'test', 'CIDEr'),
                     ('caption', 'toyworld_coco', 'test', 'BLEU-4')],
    paper_reference='sharing',
    variant_order=['all', 'all_but_ca', 'all_but_sa', 'none'],
)
CIDER_BY_VARIANT = {'all': 100.0, 'all_but_ca': 100.5, 'all_but_sa': 110.0, 'none': 108.0}


def _sharing_records(experiment: str = 'sharing') -> list[ResultRecord]:
    """4 variants × 3 seeds with a small seed spread."""
    return [ResultRecord(experiment=experiment, variant=variant, task='caption',
                         dataset='toyworld_coco', split='test',
                         metrics={'CIDEr': cider + seed * 0.3, 'BLEU-4': 30.0 + seed * 0.1},
                         units={'CIDEr': '×100', 'BLEU-4': '×100'},
                         params=int(200e6), flops=12.5, seed=seed, config_hash=f'hash-{variant}',
                         device='cpu', extra={'counts': {'images': 200, 'texts': 1000},
                                              'flops_scope': 'image encoder, one image'})
            for variant, cider in CIDER_BY_VARIANT.items() for seed in range(3)]


def test_board_has_variants_paper_rows_and_significance():
    board = render_leaderboard('sharing', _sharing_records(), SHARING_SPEC,
                               generated_at=datetime.datetime(2026, 1, 1))
    ours, paper = board.split('## Paper reference rows')
    for variant in CIDER_BY_VARIANT:
        assert f'| {variant} |' in ours
    assert 'CIDEr (×100)' in ours and 'toyworld_coco' in ours
    assert '100.30 ± 0.30 (n=3)' in ours
    assert paper.count('paper (COCO, 14M images)') >= 4
    assert 'NOT our runs' in board and '| All but SA |' in paper and '127.8' in paper
    assert 'no counterpart' not in paper  # BLEU-4, CIDEr and params all have ours
    significance = board.split('## Significance')[1].split('## ')[0]
    assert '| all vs all_but_sa |' in significance and '**significant**' in significance
    assert 'Auto-generated' in board and '(sharing.png)' in board
    assert 'Evaluated: 200 images, 1000 texts.' in ours
    assert 'GFLOPs: image encoder, one image.' in ours
    assert 'Holm-adjusted together' in significance and 'scipy.stats.ttest_ind' in significance
    assert 'error bars: ± std over 3 seeds' in board.split('### Our runs')[0]
    agreement = board.split('## Rank agreement with the paper')[1].split('## ')[0]
    assert '| caption/`toyworld_coco`/test CIDEr | +1.00 | 0.0833 |' in agreement


def test_paper_columns_without_counterpart_are_named():
    spec = dict(SHARING_SPEC, paper_reference='decoding',
                primary_metrics=[('caption', 'toyworld_coco', 'test', 'CIDEr')])
    board = render_leaderboard('sharing', _sharing_records(), spec)
    assert 'no counterpart in our runs: BLEU-4, Noise ratio (%).' in board
    assert '| beam | Beam | 19.0 | 38.4 | 128.9 | paper (COCO, 14M images) |' in board


def test_write_leaderboard_writes_png_and_index(tmp_path):
    board = write_leaderboard('sharing', _sharing_records(), SHARING_SPEC, tmp_path)
    assert (tmp_path / 'sharing.png').read_bytes()[:4] == b'\x89PNG'
    index = (tmp_path / 'README.md').read_text()
    assert '[Parameter sharing (ToyWorld)](sharing.md)' in index
    assert 'Encoder/decoder sharing policies' in index
    assert board.read_text().startswith('# Parameter sharing (ToyWorld)')


def test_generic_experiment_without_spec_or_paper_rows(tmp_path):
    records = [ResultRecord(experiment='my_probe', variant=variant, task='retrieval',
                            dataset='toyworld_flickr', split='test',
                            metrics={'TR@10': value, 'TR@1': value, 'TR@5': value,
                                     'IR@1': value - 5},
                            units={'TR@1': '%', 'TR@5': '%', 'TR@10': '%'}, params=1000)
               for variant, value in (('small', 40.0), ('large', 55.0))]
    board = render_leaderboard('my_probe', records, None)
    assert '| small |' in board and '| large |' in board
    assert '| Variant | Params (M) | IR@1 | TR@1 (%) | TR@5 (%) | TR@10 (%) |' in board
    assert 'Paper reference' not in board
    assert 'No test run' in board  # single seed: no significance test possible
    write_leaderboard('my_probe', records, None, tmp_path)
    assert (tmp_path / 'my_probe.png').exists()


def test_per_sample_scores_use_paired_bootstrap():
    records = _sharing_records()[:6]  # variants all, all_but_ca
    for record in records:
        shift = 1.0 if record.variant == 'all_but_ca' else 0.0
        record.extra['per_sample'] = {'CIDEr': {str(i): i % 7 + shift for i in range(40)}}
    board = render_leaderboard('sharing', records, SHARING_SPEC)
    assert '| paired bootstrap (n=40 samples) | [-1.00, -1.00] | 0.001 |' in board


def test_bootstrap_is_deterministic_and_brackets_difference():
    first = {str(i): float(i % 5) for i in range(50)}
    second = {str(i): float((i + 2) % 5) for i in range(50)}
    assert paired_bootstrap(first, second) == paired_bootstrap(first, second)
    result = paired_bootstrap(first, second)
    assert result.low <= result.difference <= result.high and result.samples == 50
    # 0 inside the 95% interval <=> p >= 0.05 (the p-value inverts the percentile CI)
    assert (result.low <= 0.0 <= result.high) == (result.p_value >= 0.05)
    shifted = paired_bootstrap({k: v + 3.0 for k, v in first.items()}, first)
    assert shifted.p_value == pytest.approx(2 / 2001) and shifted.low == 3.0


def test_welch_p_value_matches_the_t_table():
    # Equal sizes (3) and variances (1): dof = 4, t = shift / sqrt(2/3); the t table puts
    # the two-sided 5% critical value for 4 dof at 2.776445, so this shift gives p = 0.05.
    shift = 2.776445 * (2 / 3) ** 0.5
    assert welch_p_value([0.0, 1.0, 2.0], [shift, shift + 1, shift + 2]) == \
        pytest.approx(0.05, abs=1e-6)
    # Unequal variances: t = -5 / sqrt(1/3 + 4/3) = -3.873, dof = 2.941 (Welch-Satterthwaite)
    assert welch_p_value([0.0, 1.0, 2.0], [4.0, 6.0, 8.0]) == pytest.approx(0.0316, abs=2e-4)
    assert welch_p_value([1.0, 1.0], [1.0, 1.0]) == 1.0
    assert welch_p_value([1.0, 1.0], [2.0, 2.0]) == 0.0


def test_holm_adjusts_in_step_down_order():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, max(0.04*1, 0.06) = 0.06
    assert holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm_adjust([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm_adjust([]) == []


def test_holm_correction_can_overturn_a_single_test_verdict():
    records = _sharing_records()
    # 'all' (100.0, 100.3, 100.6) vs 'all_but_ca' (100.8, 101.0, 101.3): Welch p = 0.033,
    # significant alone, not after Holm across the board's 12 comparisons.
    for record in records:
        if record.variant == 'all_but_ca':
            record.metrics['CIDEr'] = [100.8, 101.0, 101.3][record.seed]
    significance = render_leaderboard('sharing', records, SHARING_SPEC).split(
        '## Significance')[1].split('## ')[0]
    row = next(line for line in significance.splitlines()
               if 'CIDEr' in line and '| all vs all_but_ca |' in line)
    cells = [cell.strip() for cell in row.split('|')]
    assert float(cells[6]) < 0.05 and float(cells[7]) >= 0.05
    assert cells[8] == 'not significant'


def test_units_come_from_records_and_spec_overrides():
    records = _sharing_records()
    for record in records:
        record.units = {'CIDEr': 'points'}
    board = render_leaderboard('sharing', records, SHARING_SPEC)
    assert 'CIDEr (points)' in board and '| BLEU-4 |' in board.split('## Significance')[0]
    overridden = render_leaderboard('sharing', records, dict(SHARING_SPEC, units={'CIDEr': 'x'}))
    assert 'CIDEr (x)' in overridden and 'CIDEr (points)' not in overridden
    records[0].units = {'CIDEr': '%'}
    with pytest.raises(ValueError, match=r"different units \['%', 'points'\].*leaderboard.units"):
        render_leaderboard('sharing', records, SHARING_SPEC)


def test_paper_tables_come_from_the_registry():
    table = paper_reference('sharing')
    assert isinstance(table, PaperTable) and table.task == 'caption'
    assert [row.variant for row in table.rows] == ['all', 'all_but_ca', 'all_but_sa', 'none']
    assert table.units == {'BLEU-4': '×100', 'CIDEr': '×100'}
    headline = paper_reference('headline')
    assert {row.task for row in headline} >= {'caption', 'retrieval', 'vqa'}
    with pytest.raises(ValueError, match=r"'nope' is not a registered.*'decoding'.*'sharing'"):
        paper_reference('nope')
    with pytest.raises(ValueError, match=r"paper_reference='nope'.*'headline'"):
        render_leaderboard('sharing', _sharing_records(), dict(SHARING_SPEC,
                                                                paper_reference='nope'))


def test_headline_board_lists_every_task_with_units():
    board = render_leaderboard('sharing', _sharing_records(),
                               dict(SHARING_SPEC, paper_reference='headline'))
    paper = board.split('## Paper reference rows')[1]
    assert '| caption | `coco_karpathy` | test | CIDEr (×100) | 136.7 | ViT-L |' in paper
    assert '| vqa | `vqav2` | test-dev | accuracy (%) | 78.25 |' in paper


def test_cli_filters_experiment_and_reports_unknown(tmp_path, capsys):
    for record in _sharing_records() + _sharing_records('other'):
        append_record(tmp_path / 'runs' / record.experiment / record.variant, record)
    out = tmp_path / 'boards'
    assert main(['--experiment', 'sharing', '--results', str(tmp_path / 'runs'),
                 '--out', str(out)]) == 0
    board = (out / 'sharing.md').read_text()
    assert 'python -m harness.leaderboard --experiment sharing' in board
    config = tmp_path / 'sharing_config.py'
    config.write_text(f'leaderboard = {SHARING_SPEC!r}\n')
    assert main(['--experiment', 'sharing', '--results', str(tmp_path / 'runs'),
                 '--out', str(out), '--config', str(config)]) == 0
    assert (out / 'sharing.md').read_text().startswith('# Parameter sharing (ToyWorld)')
    with pytest.raises(ValueError, match=r"experiment 'missing'.*\['other', 'sharing'\]"):
        main(['--experiment', 'missing', '--results', str(tmp_path / 'runs'), '--out', str(out)])


def test_unknown_spec_field_is_named():
    with pytest.raises(ValueError, match="unknown field.*'colour'"):
        render_leaderboard('sharing', _sharing_records(), {'colour': 'red'})


def test_index_lists_only_boards(tmp_path):
    (tmp_path / 'a.md').write_text('# Board A\n\nFirst line.\n')
    write_index(tmp_path)
    write_index(tmp_path)
    index = (tmp_path / 'README.md').read_text()
    assert '[Board A](a.md) | First line.' in index and 'README.md)' not in index


def test_unavailable_metrics_are_listed_with_their_reason():
    records = _sharing_records()
    records[0].extra['unavailable'] = {'SPICE': 'Stanford CoreNLP jars not found'}
    board = render_leaderboard('sharing', records, SHARING_SPEC)
    section = board.split('## Metrics not computed')[1].split('## ')[0]
    assert '| caption | `toyworld_coco` | test | SPICE | Stanford CoreNLP jars not found |' \
        in section
    assert '## Metrics not computed' not in render_leaderboard('sharing', _sharing_records(),
                                                               SHARING_SPEC)


def test_planned_comparisons_test_only_the_named_pairs():
    spec = dict(SHARING_SPEC, comparisons=[('all', 'all_but_ca'), ('none', 'all_but_sa')])
    significance = render_leaderboard('sharing', _sharing_records(), spec).split(
        '## Significance')[1].split('## ')[0]
    tested = {line.split('|')[2].strip() for line in significance.splitlines()
              if line.startswith('| caption')}
    assert tested == {'all vs all_but_ca', 'none vs all_but_sa'}
    assert 'all 4 ' in significance  # 2 pairs x 2 metrics, Holm-adjusted together
    with pytest.raises(ValueError, match="comparisons name \\['nonne'\\]"):
        render_leaderboard('sharing', _sharing_records(),
                           dict(SHARING_SPEC, comparisons=[('all', 'nonne')]))
