"""Leaderboard writer: variants × seeds, paper rows, significance, plot, index."""
import datetime

import pytest

from harness.leaderboard import (main, paired_bootstrap_ci, render_leaderboard,
                                 student_t_two_sided_p, write_index, write_leaderboard)
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
                         params=int(200e6), flops=12.5, seed=seed, config_hash=f'hash-{variant}',
                         device='cpu')
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
                            metrics={'TR@1': value, 'IR@1': value - 5}, params=1000)
               for variant, value in (('small', 40.0), ('large', 55.0))]
    board = render_leaderboard('my_probe', records, None)
    assert '| small |' in board and '| large |' in board and 'TR@1 (%)' in board
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
    assert 'paired bootstrap (n=40 samples)' in board and '95% CI [-1.00, -1.00]' in board


def test_bootstrap_ci_is_deterministic_and_brackets_difference():
    first = {str(i): float(i % 5) for i in range(50)}
    second = {str(i): float((i + 2) % 5) for i in range(50)}
    assert paired_bootstrap_ci(first, second) == paired_bootstrap_ci(first, second)
    difference, low, high, n = paired_bootstrap_ci(first, second)
    assert low <= difference <= high and n == 50


def test_t_distribution_matches_known_critical_values():
    assert student_t_two_sided_p(2.776, 4) == pytest.approx(0.05, abs=1e-4)
    assert student_t_two_sided_p(1.0, 1) == pytest.approx(0.5)


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
