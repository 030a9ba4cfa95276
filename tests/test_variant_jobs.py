"""``--jobs N``: an experiment's runs as child processes, several at a time, with the scores
of one sequential process."""
import json
import sys
from pathlib import Path

import pytest

from harness import run as run_cli_module
from harness.stage_times import RAN, StageTime, load_stage_times, save_stage_times
from harness.variant_jobs import (VariantJob, VariantJobFailed, child_environment,
                                  run_variant_jobs)
from tests.conftest import TINY_TOYWORLD_OPTIONS


def script_job(tmp_path: Path, label: str, body: str) -> VariantJob:
    """A child that runs ``body`` (Python) and, when it gets to the end, leaves one stage
    time; ``TIMES`` in ``body`` is its times file."""
    times = tmp_path / f'{label}.json'
    code = (f'import json, os, sys, time\nTIMES = {str(times)!r}\n{body}\n'
            f'json.dump([dict(variant={label!r}, seed=0, stage="s", status="ran", '
            f'seconds=1.0)], open(TIMES, "w"))\n')
    return VariantJob(label, [sys.executable, '-c', code], times)


def test_stage_times_go_through_a_file_unchanged(tmp_path):
    times = [StageTime('a', 0, 'pretrain', RAN, 12.5), StageTime('b', 1, 'eval', 'copied', 0.1)]
    save_stage_times(tmp_path / 'times.json', times)
    assert load_stage_times(tmp_path / 'times.json') == times


def test_children_run_at_most_n_at_a_time_and_their_lines_are_labelled(tmp_path, capfd):
    # Each child notes when it starts and ends; with 2 at a time no third overlaps.
    body = ('open({log!r}, "a").write(f"start {{time.time()}}\\n"); print("hello", flush=True);'
            ' time.sleep(0.6); open({log!r}, "a").write(f"end {{time.time()}}\\n")')
    logs = [tmp_path / f'log{index}' for index in range(3)]
    jobs = [script_job(tmp_path, f'run{index}', body.format(log=str(log)))
            for index, log in enumerate(logs)]
    times = run_variant_jobs(jobs, at_once=2)
    assert sorted(time.variant for time in times) == ['run0', 'run1', 'run2']
    spans = [[float(line.split()[1]) for line in log.read_text().splitlines()] for log in logs]
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1]  # the first two overlap
    assert spans[2][0] >= min(spans[0][1], spans[1][1])  # the third waited for a free slot
    out = capfd.readouterr().out
    assert all(f'[run{index}] hello' in out for index in range(3))


def test_after_a_failure_no_new_run_starts_and_the_error_names_it(tmp_path, capfd):
    jobs = [script_job(tmp_path, 'bad', 'print("boom: fix the config"); sys.exit(3)'),
            script_job(tmp_path, 'slow', 'time.sleep(0.5)'),
            script_job(tmp_path, 'never', '')]
    with pytest.raises(VariantJobFailed, match=r'bad \(exit code 3\) failed.*goes on'):
        run_variant_jobs(jobs, at_once=2)
    assert (tmp_path / 'slow.json').is_file()  # the run already going was let finish
    assert not (tmp_path / 'never.json').exists()
    assert '[bad] boom: fix the config' in capfd.readouterr().out


def test_children_wait_for_openmp_passively_unless_the_user_chose(monkeypatch):
    monkeypatch.delenv('OMP_WAIT_POLICY', raising=False)
    assert child_environment()['OMP_WAIT_POLICY'] == 'PASSIVE'
    monkeypatch.setenv('OMP_WAIT_POLICY', 'ACTIVE')
    assert child_environment()['OMP_WAIT_POLICY'] == 'ACTIVE'


def test_a_child_shares_the_runs_options_and_adds_its_variant_and_seed(tmp_path):
    args = run_cli_module.parse_args(['configs/ablation_sharing.py', '--cfg-options',
                                      'retrieval_k=4', 'model.sharing=none', '--force',
                                      '--limit', '5', '--jobs', '2'])
    base = run_cli_module.job_base(args, tmp_path)
    assert base[1:] == ['configs/ablation_sharing.py', '--work-dir', str(tmp_path.resolve()),
                        '--force', '--limit', '5', '--cfg-options', 'retrieval_k=4',
                        'model.sharing=none']
    assert Path(base[0]).name == 'run.py'


@pytest.mark.parametrize('jobs', ['0', 'two'])
def test_a_bad_job_count_is_refused(capsys, jobs):
    with pytest.raises(SystemExit):
        run_cli_module.main(['configs/ablation_sharing.py', '--jobs', jobs])
    assert 'whole number >= 1' in capsys.readouterr().err


def test_a_bad_configured_job_count_is_one_line(capsys, tiny_toyworld, tmp_path):
    code = run_cli_module.main(['configs/ablation_sharing.py', '--work-dir', str(tmp_path),
                                '--cfg-options', f'toyworld_dir={tiny_toyworld}',
                                *TINY_TOYWORLD_OPTIONS, 'experiment.jobs=0'])
    assert code == 2 and 'experiment.jobs=0 must be a whole number' in capsys.readouterr().err


def results(work_dir: Path, variant: str) -> list:
    """The metrics of a variant's results records, in order."""
    path = work_dir / variant / 'seed_0' / 'results.jsonl'
    return [(record['task'], record['metrics'])
            for record in map(json.loads, path.read_text().splitlines())]


@pytest.mark.slow
def test_two_runs_at_a_time_score_as_one_process_bit_for_bit(run_cli, tmp_path):
    options = ['pretrain_epochs=1', f'leaderboard_dir={tmp_path / "boards"}']
    runs = {}
    for jobs in ('1', '2'):
        work_dir = tmp_path / f'jobs{jobs}'
        done = run_cli('configs/ablation_sharing.py', '--work-dir', str(work_dir),
                       '--variant', 'all', '--variant', 'none', '--jobs', jobs,
                       cfg_options=options)
        runs[jobs] = {variant: results(work_dir, variant) for variant in ('all', 'none')}
        assert 'Stage times of this run' in done.stdout + done.stderr
    assert runs['1'] == runs['2'] and runs['1']['all'] != runs['1']['none']
    both = done.stdout + done.stderr
    assert '[all seed 0] started (1 of 2 runs, 2 at a time)' in both
    assert '[none seed 0]' in both and 'wall:' in both and '2 run(s) at a time' in both
