"""Experiments: finished (variant, seed, stage) work is reused unless --force or its config or
inputs changed; order is kept."""
import json

from harness.experiment import run_experiment
from harness.core.registry import STAGES
from harness.core.stage import Stage

CALLS = []


@STAGES.register_module(force=True)
class CountingStage(Stage):
    """Records each run and hands a value to the next stage through the manifest."""

    def __init__(self, name, reads=None):
        super().__init__(name)
        self.reads = reads

    def run(self, ctx):
        seen = ctx.manifest.outputs(self.reads)['value'] if self.reads else None
        CALLS.append((ctx.variant, ctx.seed, self.name, seen))
        return dict(value=f'{ctx.variant}-{self.name}')


def config():
    return dict(experiment=dict(
        name='reuse_check', seeds=[0, 1],
        variants=dict(a=dict(), b=dict()),
        stages=[dict(type='CountingStage', name='first'),
                dict(type='CountingStage', name='second', reads='first')]))


def test_rerun_reuses_finished_stages_and_force_redoes_them(tmp_path):
    CALLS.clear()
    run_experiment(config(), tmp_path, leaderboard_dir=tmp_path / 'boards')
    assert len(CALLS) == 8 and CALLS[1] == ('a', 0, 'second', 'a-first')
    CALLS.clear()
    run_experiment(config(), tmp_path, leaderboard_dir=tmp_path / 'boards')
    assert CALLS == []
    run_experiment(config(), tmp_path, variants=['b'], seeds=[1], force=True,
                   leaderboard_dir=tmp_path / 'boards')
    assert CALLS == [('b', 1, 'first', None), ('b', 1, 'second', 'b-first')]


@STAGES.register_module(force=True)
class ExternalInputStage(CountingStage):
    """A stage reading an input from outside the experiment (a file, as a checkpoint)."""

    def __init__(self, name, source):
        super().__init__(name)
        self.source = source

    def fingerprint(self):
        return open(self.source).read()


def test_a_changed_external_input_reruns_a_finished_stage(tmp_path):
    source = tmp_path / 'weights.txt'
    source.write_text('v1')
    cfg = dict(experiment=dict(name='external', seeds=[0], variants=dict(a=dict()),
                               stages=[dict(type='ExternalInputStage', name='eval',
                                            source=str(source))]))
    CALLS.clear()
    for _ in range(2):
        run_experiment(cfg, tmp_path / 'work', leaderboard_dir=tmp_path / 'boards')
    assert len(CALLS) == 1  # same input: reused
    source.write_text('v2')
    run_experiment(cfg, tmp_path / 'work', leaderboard_dir=tmp_path / 'boards')
    assert len(CALLS) == 2


def test_a_relative_work_dir_gives_stages_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    CALLS.clear()
    manifest_dirs = []

    @STAGES.register_module(force=True)
    class WorkDirStage(Stage):
        def run(self, ctx):
            manifest_dirs.append(ctx.work_dir)
            return dict(corpus=str(ctx.work_dir / 'corpus.json'))

    cfg = dict(experiment=dict(name='relative', seeds=[0], variants=dict(a=dict()),
                               stages=[dict(type='WorkDirStage', name='write')]))
    run_experiment(cfg, 'work_dirs/relative', leaderboard_dir=tmp_path / 'boards')
    assert manifest_dirs == [tmp_path / 'work_dirs' / 'relative' / 'a' / 'seed_0']


@STAGES.register_module(force=True)
class StageDirStage(Stage):
    """Appends a line to a file in its stage dir and returns how many lines it holds."""

    def __init__(self, name, lr=0.1, reads=None):
        super().__init__(name)

    def run(self, ctx):
        log = ctx.work_dir / self.name / 'log.txt'
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, 'a') as handle:
            handle.write('ran\n')
        CALLS.append(self.name)
        return dict(lines=len(log.read_text().splitlines()))


def test_an_edited_stage_runs_afresh_with_the_stages_that_read_it(tmp_path):
    def cfg(lr):
        return dict(experiment=dict(name='edited', seeds=[0], variants=dict(a=dict()), stages=[
            dict(type='StageDirStage', name='first'),
            dict(type='StageDirStage', name='second', lr=lr, reads='first'),
            dict(type='StageDirStage', name='third', reads='second'),
            dict(type='StageDirStage', name='fourth', reads='first')]))
    CALLS.clear()
    run_experiment(cfg(0.1), tmp_path, leaderboard_dir=tmp_path / 'boards')
    run_experiment(cfg(0.1), tmp_path, leaderboard_dir=tmp_path / 'boards')
    assert CALLS == ['first', 'second', 'third', 'fourth']
    run_experiment(cfg(0.2), tmp_path, leaderboard_dir=tmp_path / 'boards')
    assert CALLS == ['first', 'second', 'third', 'fourth', 'second', 'third']
    stages = json.loads((tmp_path / 'a' / 'seed_0' / 'manifest.json').read_text())['stages']
    assert stages['second']['outputs']['lines'] == 1  # its old files were cleared first
    assert stages['first']['outputs']['lines'] == 1
    run_experiment(cfg(0.2), tmp_path, force=True, leaderboard_dir=tmp_path / 'boards')
    assert CALLS[-4:] == ['first', 'second', 'third', 'fourth']


@STAGES.register_module(force=True)
class SharedFileStage(Stage):
    """A shareable stage writing a file in its folder; outputs name it (nested too)."""

    shareable = True

    def __init__(self, name, salt='', reads=None):
        super().__init__(name)
        self.salt, self.reads = salt, reads

    def run(self, ctx):
        path = ctx.work_dir / self.name / 'out.txt'
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f'{self.salt} seed {ctx.seed}')
        CALLS.append((ctx.variant, ctx.seed, self.name))
        return dict(path=str(path), files=[dict(path=str(path))], elsewhere='/data/x.json')


def test_variants_copy_a_shareable_stage_another_variant_finished(tmp_path):
    cfg = dict(experiment=dict(
        name='shared', seeds=[0, 1], variants=dict(a=dict(), b=dict(), c=dict(salt='other')),
        stages=[dict(type='SharedFileStage', name='first', salt='${salt}'),
                dict(type='SharedFileStage', name='second', reads='first'),
                dict(type='CountingStage', name='report')]), salt='same')
    CALLS.clear()
    run_experiment(cfg, tmp_path, leaderboard_dir=tmp_path / 'boards')
    trained = [call for call in CALLS if call[2] != 'report']
    # b has a's first and second stages for each seed; c's first differs, so its second too.
    assert sorted(trained) == sorted((variant, seed, stage) for variant in 'ac'
                                     for seed in (0, 1) for stage in ('first', 'second'))
    assert len(CALLS) - len(trained) == 6  # a stage that is not shareable runs everywhere
    manifest = json.loads((tmp_path / 'b' / 'seed_1' / 'manifest.json').read_text())['stages']
    source = json.loads((tmp_path / 'a' / 'seed_1' / 'manifest.json').read_text())['stages']
    copied = tmp_path / 'b' / 'seed_1' / 'second' / 'out.txt'
    assert manifest['second']['outputs'] == dict(path=str(copied), files=[dict(path=str(copied))],
                                                 elsewhere='/data/x.json')
    assert (tmp_path / 'b' / 'seed_1' / 'first' / 'out.txt').read_text() == 'same seed 1'
    assert manifest['second']['copied_from'] == str(tmp_path / 'a' / 'seed_1' / 'second')
    assert manifest['second']['run_id'] == source['second']['run_id']
    CALLS.clear()
    run_experiment(cfg, tmp_path, variants=['b'], seeds=[0], force=True,
                   leaderboard_dir=tmp_path / 'boards')
    assert CALLS == [('b', 0, 'first'), ('b', 0, 'second'), ('b', 0, 'report', None)]
