"""The closing stage-time table of an experiment run."""
from harness.core.registry import STAGES
from harness.core.stage import Stage
from harness import experiment
from harness.experiment import run_experiment
from harness.stage_times import COPIED, RAN, REUSED, StageTime, stage_time_table


def test_the_table_sums_seconds_and_counts_per_stage_and_variant():
    table = stage_time_table([StageTime('a', 0, 'pretrain', RAN, 30.0),
                              StageTime('b', 0, 'pretrain', COPIED, 1.0),
                              StageTime('a', 0, 'eval', RAN, 9.0),
                              StageTime('b', 0, 'eval', REUSED, 0.0)])
    rows = {line.split()[0]: line.split()[1:] for line in table.splitlines() if line.strip()}
    assert rows['pretrain'] == ['1', '0', '1', '31.0', '77.5%']
    assert rows['eval'] == ['1', '1', '0', '9.0', '22.5%']
    assert rows['a'] == ['2', '0', '0', '39.0', '97.5%']
    assert table.splitlines()[-1] == 'total: 40.0 s (0.7 min) running stages'


@STAGES.register_module(force=True)
class QuietStage(Stage):
    """Does nothing."""

    def run(self, ctx):
        return {}


def test_every_experiment_run_ends_with_the_table(tmp_path, monkeypatch):
    cfg = dict(experiment=dict(name='timed', seeds=[0], variants=dict(a=dict()),
                               stages=[dict(type='QuietStage', name='only')]))
    run_experiment(cfg, tmp_path, leaderboard_dir=tmp_path / 'boards')
    logged = []
    monkeypatch.setattr(experiment, 'print_log', lambda message, **_: logged.append(message))
    run_experiment(cfg, tmp_path, leaderboard_dir=tmp_path / 'boards')
    table = next(message for message in logged if 'Stage times of this run (timed)' in message)
    assert any(line.split()[:4] == ['only', '0', '1', '0'] for line in table.splitlines())
