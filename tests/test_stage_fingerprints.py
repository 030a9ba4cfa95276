"""A stage's fingerprint covers only what it reads: its own config, the variant config keys it
declares, its outside inputs and the stages it reads. An evaluation-only change re-runs the
evaluation and keeps the training before it; a stage that runs again re-runs its readers."""
import json
import os

import pytest
from conftest import TINY_TOYWORLD_CFG

from harness.config import load_config
from harness.core.registry import STAGES
from harness.core.stage import Stage
from harness.experiment import run_experiment

CALLS = []


@STAGES.register_module(force=True)
class ModelReadingStage(Stage):
    """Reads the variant's ``model`` (only) and, when given, another stage's output."""

    config_keys = ('model',)

    def __init__(self, name, reads=None, option=None, fail=False):
        super().__init__(name)
        self.reads = reads
        self.fail = fail

    def run(self, ctx):
        if self.fail:
            raise RuntimeError(f'{self.name} failed')
        seen = ctx.manifest.outputs(self.reads)['value'] if self.reads else None
        CALLS.append(self.name)
        return dict(value=f'{self.name}:{ctx.cfg["model"]}:{seen}')


@STAGES.register_module(force=True)
class OutputReadingStage(ModelReadingStage):
    """Reads nothing of the variant config, only another stage's output."""

    config_keys = ()


def experiment(k=8, width=4, fail=False):
    """train <- evaluate (option k); train <- finetune <- evaluate_finetuned (reads no
    config key)."""
    return dict(model=dict(width=width), retrieval_k=k, experiment=dict(
        name='fingerprints', seeds=[0], variants=dict(a=dict()), stages=[
            dict(type='ModelReadingStage', name='train'),
            dict(type='ModelReadingStage', name='evaluate', reads='train',
                 option='${retrieval_k}'),
            dict(type='ModelReadingStage', name='finetune', reads='train'),
            dict(type='OutputReadingStage', name='evaluate_finetuned', reads='finetune',
                 fail=fail)]))


def run(tmp_path, cfg, **options):
    CALLS.clear()
    run_experiment(cfg, tmp_path / 'work', leaderboard_dir=tmp_path / 'boards', **options)
    return list(CALLS)


def test_an_option_only_one_stage_reads_re_runs_only_that_stage(tmp_path):
    assert run(tmp_path, experiment(k=8)) == ['train', 'evaluate', 'finetune',
                                             'evaluate_finetuned']
    assert run(tmp_path, experiment(k=8)) == []
    assert run(tmp_path, experiment(k=4)) == ['evaluate']


def test_a_changed_config_key_re_runs_every_stage_reading_it_and_their_readers(tmp_path):
    run(tmp_path, experiment(width=4))
    assert run(tmp_path, experiment(width=8)) == ['train', 'evaluate', 'finetune',
                                                 'evaluate_finetuned']


def test_a_stage_re_run_in_an_interrupted_run_still_re_runs_its_readers(tmp_path):
    run(tmp_path, experiment(width=4))
    # finetune runs again (the model changed) and the run stops at its reader; the next run
    # must not reuse the old evaluate_finetuned, though its own config is what it was then.
    with pytest.raises(RuntimeError, match='evaluate_finetuned failed'):
        run(tmp_path, experiment(width=8, fail=True))
    assert CALLS == ['train', 'evaluate', 'finetune']
    assert run(tmp_path, experiment(width=8)) == ['evaluate_finetuned']


def test_force_re_runs_every_stage(tmp_path):
    run(tmp_path, experiment())
    assert run(tmp_path, experiment(), force=True) == ['train', 'evaluate', 'finetune',
                                                       'evaluate_finetuned']


def benchmark_options(toyworld_root, **options):
    """The CI benchmark at its smallest on the tiny ToyWorld."""
    return {**TINY_TOYWORLD_CFG, 'toyworld_dir': str(toyworld_root), 'pretrain_epochs': 1,
            'finetune_epochs': 1, 'batch_size': 16, 'retrieval_k': 4, **options}


def test_changing_retrieval_k_keeps_the_trained_checkpoints_and_re_evaluates(tiny_toyworld,
                                                                             tmp_path):
    work, boards = tmp_path / 'work', tmp_path / 'boards'
    run_experiment(load_config('configs/ci_benchmark.py', benchmark_options(tiny_toyworld)),
                   work, leaderboard_dir=boards)
    manifest_path = work / 'all_but_sa' / 'seed_0' / 'manifest.json'
    before = json.loads(manifest_path.read_text())['stages']
    checkpoint = before['pretrain']['outputs']['checkpoint']
    written = (work / 'all_but_sa' / 'seed_0' / 'pretrain').stat().st_mtime_ns, \
        os.stat(checkpoint).st_mtime_ns

    run_experiment(load_config('configs/ci_benchmark.py',
                               benchmark_options(tiny_toyworld, retrieval_k=2)),
                   work, leaderboard_dir=boards)
    after = json.loads(manifest_path.read_text())['stages']
    for stage in ('pretrain', 'finetune_caption', 'eval_caption'):
        assert after[stage] == before[stage], stage  # reused: same entry, same run
    assert after['eval_retrieval']['wall_time_s'] != before['eval_retrieval']['wall_time_s']
    assert after['eval_retrieval']['fingerprint'] != before['eval_retrieval']['fingerprint']
    assert ((work / 'all_but_sa' / 'seed_0' / 'pretrain').stat().st_mtime_ns,
            os.stat(checkpoint).st_mtime_ns) == written
