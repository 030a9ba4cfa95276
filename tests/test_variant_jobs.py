"""``--jobs N``: an experiment's runs as child processes, several at a time, with the scores
of one sequential process."""
import json
import os
import sys
from pathlib import Path

import pytest
import torch

from harness import run as run_cli_module
from harness import variant_jobs
from harness.stage_times import RAN, StageTime
from harness.variant_jobs import (VariantJob, VariantJobFailed, child_environment, cpu_shares,
                                  describe_cpus, finish_job_file, job_runs, job_times,
                                  parent_cpus, run_groups, run_variant_jobs, write_job_file)
from tests.conftest import TINY_TOYWORLD_OPTIONS


def script_job(tmp_path: Path, label: str, body: str) -> VariantJob:
    """A child that runs ``body`` (Python) and, when it gets to the end, leaves one stage
    time in its job file."""
    job_file = tmp_path / f'{label}.json'
    write_job_file(job_file, [(label, 0)])
    code = (f'import sys, time\n{body}\n'
            f'from harness.variant_jobs import finish_job_file\n'
            f'from harness.stage_times import StageTime\n'
            f'finish_job_file({str(job_file)!r}, [StageTime({label!r}, 0, "s", "ran", 1.0)])\n')
    return VariantJob(label, [(label, 0)], [sys.executable, '-c', code], job_file)


def test_runs_are_dealt_round_robin_in_order():
    runs = [('a', 0), ('a', 1), ('b', 0), ('b', 1), ('c', 0)]
    assert run_groups(runs, 2) == [[('a', 0), ('b', 0), ('c', 0)], [('a', 1), ('b', 1)]]
    assert run_groups(runs[:1], 4) == [[('a', 0)]]


def test_a_job_file_hands_over_runs_and_stage_times(tmp_path):
    job_file = tmp_path / 'jobs' / '1.json'
    write_job_file(job_file, [('all', 0), ('none', 2)])
    assert job_runs(job_file) == [('all', 0), ('none', 2)]
    times = [StageTime('all', 0, 'pretrain', RAN, 12.5),
             StageTime('none', 2, 'eval', 'copied', 0.1)]
    finish_job_file(job_file, times)
    assert job_times(job_file) == times and job_runs(job_file) == [('all', 0), ('none', 2)]


def test_children_run_side_by_side_and_their_lines_are_labelled(tmp_path, capfd, monkeypatch):
    logged = []
    monkeypatch.setattr(variant_jobs, 'print_log', lambda message, **_: logged.append(message))
    body = ('open({log!r}, "a").write(f"{{time.time()}}\\n"); print("hello", flush=True);'
            ' time.sleep(0.6); open({log!r}, "a").write(f"{{time.time()}}\\n")')
    logs = [tmp_path / f'log{index}' for index in range(2)]
    jobs = [script_job(tmp_path, f'job{index}', body.format(log=str(log)))
            for index, log in enumerate(logs)]
    times = run_variant_jobs(jobs)
    assert [time.variant for time in times] == ['job0', 'job1']
    (start0, end0), (start1, end1) = [[float(line) for line in log.read_text().split()]
                                      for log in logs]
    assert start0 < end1 and start1 < end0  # they overlapped
    out = capfd.readouterr().out
    assert '[job0] hello' in out and '[job1] hello' in out
    for label in ('job0', 'job1'):
        assert any(message.startswith(f'[{label}] runs {label} seed 0') for message in logged)
    assert any(message.startswith('[job1] ended after') for message in logged)


def test_a_failed_child_lets_the_others_finish_and_the_error_names_it(tmp_path, capfd):
    jobs = [script_job(tmp_path, 'bad', 'print("boom: fix the config"); sys.exit(3)'),
            script_job(tmp_path, 'slow', 'time.sleep(0.5)')]
    with pytest.raises(VariantJobFailed, match=r'bad \(exit code 3\) failed.*goes on'):
        run_variant_jobs(jobs)
    assert job_times(tmp_path / 'slow.json')  # the other child finished its runs
    assert '[bad] boom: fix the config' in capfd.readouterr().out


def test_children_wait_for_openmp_passively_unless_the_user_chose(monkeypatch):
    monkeypatch.delenv('OMP_WAIT_POLICY', raising=False)
    assert child_environment()['OMP_WAIT_POLICY'] == 'PASSIVE'
    monkeypatch.setenv('OMP_WAIT_POLICY', 'ACTIVE')
    assert child_environment()['OMP_WAIT_POLICY'] == 'ACTIVE'


def test_children_keep_this_process_thread_count_unless_the_user_chose(monkeypatch):
    for name in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
        monkeypatch.delenv(name, raising=False)
    env = child_environment()
    assert env['OMP_NUM_THREADS'] == env['MKL_NUM_THREADS'] == str(torch.get_num_threads())
    monkeypatch.setenv('OMP_NUM_THREADS', '7')
    assert child_environment()['OMP_NUM_THREADS'] == '7'


def test_cpus_are_cut_into_contiguous_shares_unless_too_few():
    assert cpu_shares(2, [1, 0]) == [[0], [1]]
    assert cpu_shares(2, [0, 1, 2]) == [[0], [1, 2]]
    assert cpu_shares(3, list(range(8))) == [[0, 1], [2, 3, 4], [5, 6, 7]]
    assert cpu_shares(3, [0, 1]) == [None, None, None]
    assert [describe_cpus(cpus) for cpus in ([3], [0, 1, 2], [0, 2], None)] == [
        ' on CPU 3', ' on CPUs 0-2', ' on CPUs 0, 2', '']


@pytest.mark.skipif(not hasattr(os, 'sched_setaffinity'), reason='Linux scheduling calls')
def test_each_child_runs_on_its_share_as_batch_work_with_this_thread_count(tmp_path):
    body = ('import json, os, torch; open({log!r}, "w").write(json.dumps('
            '[sorted(os.sched_getaffinity(0)), torch.get_num_threads(), '
            'os.sched_getscheduler(0)]))')
    logs = [tmp_path / f'log{index}' for index in range(2)]
    own = (sorted(os.sched_getaffinity(0)), os.sched_getscheduler(0))
    run_variant_jobs([script_job(tmp_path, f'job{index}', body.format(log=str(log)))
                      for index, log in enumerate(logs)])
    for log, share in zip(logs, cpu_shares(2, parent_cpus())):
        cpus, threads, policy = json.loads(log.read_text())
        assert threads == torch.get_num_threads()
        assert cpus == (share or own[0])
        assert policy == (os.SCHED_BATCH if share else own[1])
    assert (sorted(os.sched_getaffinity(0)), os.sched_getscheduler(0)) == own


@pytest.mark.skipif(not hasattr(os, 'sched_setaffinity'), reason='Linux scheduling calls')
def test_a_refused_pinning_leaves_the_child_on_every_cpu(tmp_path, monkeypatch):
    def refuse(pid, cpus):
        raise PermissionError('not in this container')
    logged = []
    monkeypatch.setattr(variant_jobs, 'print_log', lambda message, **_: logged.append(message))
    monkeypatch.setattr(os, 'sched_setaffinity', refuse)
    log = tmp_path / 'log'
    body = (f'import json, os; '
            f'open({str(log)!r}, "w").write(json.dumps(sorted(os.sched_getaffinity(0))))')
    run_variant_jobs([script_job(tmp_path, 'job0', body), script_job(tmp_path, 'job1', '')])
    assert json.loads(log.read_text()) == parent_cpus()
    assert logged[0] == '[job0] runs job0 seed 0'  # no CPUs named


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
def test_two_processes_score_as_one_bit_for_bit(run_cli, tmp_path):
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
    assert '[job 1/2] runs all seed 0' in both and '[job 2/2] runs none seed 0' in both
    assert '[job 2/2] ' in both and 'in 2 processes' in both
