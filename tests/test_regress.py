"""CI score-regression gate: pass, fail, tolerance, missing metrics, --update."""
import json

import pytest

from harness import regress
from harness.benchmark import flatten_scores
from harness.regress import Baseline, compare, load_baseline, main
from harness.results import ResultRecord

CIDER, RECALL = 'caption/toyworld_coco/test/CIDEr', 'retrieval/toyworld_flickr/test/TR@1'
BASELINE = {'name': 'smoke', 'benchmark_config': 'configs/ci_benchmark.py',
            'metrics': {CIDER: 40.0, RECALL: 60.0}, 'tolerance': {CIDER: 0.5, RECALL: 1.0},
            'threads': 2, 'created': '2026-01-01T00:00:00+00:00', 'git_revision': 'abc'}


@pytest.fixture
def baselines_dir(tmp_path):
    directory = tmp_path / 'baselines'
    directory.mkdir()
    (directory / 'smoke.json').write_text(json.dumps(BASELINE))
    return directory


def _gate(baselines_dir, scores, monkeypatch, *extra):
    """Runs the CLI with the benchmark monkeypatched to return ``scores``."""
    monkeypatch.setattr(regress, 'benchmark_scores', lambda baseline: dict(scores))
    return main(['--baselines-dir', str(baselines_dir), *extra])


def test_passes_at_baseline(baselines_dir, monkeypatch, capsys):
    assert _gate(baselines_dir, BASELINE['metrics'], monkeypatch) == 0
    assert 'RESULT: PASS' in capsys.readouterr().out


def test_fails_when_a_metric_drops_beyond_tolerance(baselines_dir, monkeypatch, capsys):
    assert _gate(baselines_dir, {CIDER: 39.4, RECALL: 60.0}, monkeypatch) == 1
    out = capsys.readouterr().out
    failing = next(line for line in out.splitlines() if line.startswith(CIDER))
    assert 'FAIL' in failing and '-0.6000' in failing
    assert f'RESULT: FAIL {CIDER}' in out


def test_passes_within_tolerance_and_notes_improvement():
    rows = compare(load_baseline_from(BASELINE), {CIDER: 39.5, RECALL: 62.0})
    assert [row.status for row in rows] == ['PASS', 'PASS']
    assert rows[1].note == 'improved'


def test_missing_and_new_metrics_are_reported(baselines_dir, monkeypatch, capsys):
    assert _gate(baselines_dir, {CIDER: 40.0, 'vqa/extra': 1.0}, monkeypatch) == 1
    out = capsys.readouterr().out
    assert any(line.startswith(RECALL) and 'MISSING' in line for line in out.splitlines())
    assert any(line.startswith('vqa/extra') and 'NEW' in line for line in out.splitlines())


def test_scores_file_is_gated_without_running_the_benchmark(baselines_dir, tmp_path, monkeypatch):
    scores = tmp_path / 'scores.json'
    scores.write_text(json.dumps({'metrics': {CIDER: 41.0, RECALL: 58.0}}))
    monkeypatch.setattr(regress, 'benchmark_scores', pytest.fail)
    assert main(['--baselines-dir', str(baselines_dir), '--baseline', 'smoke',
                 '--scores', str(scores)]) == 1


def test_update_rewrites_values_keeps_tolerances_and_shows_diff(baselines_dir, monkeypatch,
                                                                capsys):
    monkeypatch.setattr(regress, 'git_revision', lambda: 'c0ffee')
    assert _gate(baselines_dir, {CIDER: 42.0, RECALL: 60.0, 'new/metric': 3.0}, monkeypatch,
                 '--update') == 0
    out = capsys.readouterr().out
    assert any(line.startswith(CIDER) and '40.0000' in line and '42.0000' in line
               and '+2.0000' in line for line in out.splitlines())
    updated = load_baseline(baselines_dir / 'smoke.json')
    assert updated.metrics == {CIDER: 42.0, RECALL: 60.0, 'new/metric': 3.0}
    assert updated.tolerance == {CIDER: 0.5, RECALL: 1.0, 'new/metric': 0.0}
    assert updated.git_revision == 'c0ffee' and updated.threads == 2
    assert _gate(baselines_dir, updated.metrics, monkeypatch) == 0


def test_baseline_without_tolerance_names_file_field_and_fix(tmp_path):
    path = tmp_path / 'bad.json'
    path.write_text(json.dumps({**BASELINE, 'tolerance': {CIDER: 0.5}}))
    with pytest.raises(ValueError, match=r'bad\.json: field "tolerance" lacks .*TR@1.*add'):
        load_baseline(path)


def test_unknown_baseline_lists_known_ones(baselines_dir):
    with pytest.raises(FileNotFoundError, match=r"known baselines: \['smoke'\]"):
        main(['--baselines-dir', str(baselines_dir), '--baseline', 'nope'])


def load_baseline_from(data: dict) -> Baseline:
    """A Baseline straight from a dict (no file)."""
    return Baseline(**data)


@pytest.mark.parametrize('revision', ['abc123-dirty', 'unknown'])
def test_update_refuses_a_tree_that_is_not_a_clean_commit(baselines_dir, monkeypatch, revision):
    monkeypatch.setattr(regress, 'git_revision', lambda: revision)
    monkeypatch.setattr(regress, 'benchmark_scores', pytest.fail)  # refused before running
    with pytest.raises(RuntimeError, match='commit or stash'):
        main(['--baselines-dir', str(baselines_dir), '--update'])
    assert load_baseline(baselines_dir / 'smoke.json').metrics == BASELINE['metrics']


def test_the_benchmark_runs_with_the_baselines_thread_count(monkeypatch):
    calls = []
    monkeypatch.setattr(regress, 'run_benchmark', lambda config, threads, rising_only:
                        calls.append((config, threads, rising_only)) or {CIDER: 1})
    assert regress.benchmark_scores(load_baseline_from(BASELINE)) == {CIDER: 1.0}
    assert calls == [('configs/ci_benchmark.py', 2, True)]
    without = load_baseline_from({**BASELINE, 'threads': None})
    with pytest.raises(ValueError, match='"threads": 2'):
        regress.benchmark_scores(without)


def test_a_bad_thread_count_names_the_file_and_field(tmp_path):
    path = tmp_path / 'bad.json'
    path.write_text(json.dumps({**BASELINE, 'threads': 0}))
    with pytest.raises(ValueError, match=r'bad\.json: field "threads" is 0'):
        load_baseline(path)


def test_the_committed_baseline_records_its_thread_count():
    assert load_baseline('leaderboards/baselines/toyworld_smoke.json').threads == 2


def test_the_gate_leaves_out_metrics_that_fall_when_better():
    record = ResultRecord(experiment='e', variant='v', task='video_retrieval', dataset='toy',
                          split='test', metrics={'t2v_R@1': 25.0, 't2v_MdR': 3.0}, params=1,
                          higher_is_better={'t2v_R@1': True, 't2v_MdR': False})
    everything = flatten_scores([record])
    assert set(everything) == {'video_retrieval/toy/test/t2v_R@1',
                               'video_retrieval/toy/test/t2v_MdR'}
    assert flatten_scores([record], rising_only=True) == {
        'video_retrieval/toy/test/t2v_R@1': 25.0}
