"""The experiment runner on 2 ranks (gloo, CPU): rank 0 writes, every rank waits for it.

``run_experiment(..., launcher='pytorch')`` joins the process group before its first stage,
so a forced re-run's folder is cleared before any rank writes into it, the manifest is
written by rank 0 alone while every rank holds the same entries, a training stage's
checkpoint is handed on only once rank 0 has saved it, a finished stage is copied once, and
results are recorded once.
"""
import copy
import json
import os
import shutil
import time

import pytest
from gloo_ranks import run_on_ranks
from mmengine.dist import barrier, get_rank
from toy_training import toy_config

import harness.core.stage
import harness.experiment
from harness.core.registry import STAGES
from harness.core.stage import Stage
from harness.experiment import run_experiment

PROBES = []  # this process's manifest entries, as each probe stage saw them
COUNTS = dict(manifest_writes=0, records=0)


@STAGES.register_module(force=True)
class RankFilesStage(Stage):
    """Each rank appends a line to its own file in the stage folder; once all have written,
    returns the folder's files and their line counts."""

    def run(self, ctx):
        folder = ctx.work_dir / self.name
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f'rank{get_rank()}.txt', 'a') as handle:
            handle.write('ran\n')
        barrier()
        return {path.name: len(path.read_text().splitlines())
                for path in sorted(folder.iterdir())}


@STAGES.register_module(force=True)
class ManifestProbeStage(Stage):
    """Keeps the manifest entries this rank holds, and records a result."""

    def run(self, ctx):
        PROBES.append(copy.deepcopy(ctx.manifest.stages))
        ctx.record(self, model=None, result=None, params=0, wall_time_s=0.0)
        return {}


def experiment_config() -> dict:
    """Two variants that train the same toy model (b copies a's), then the stages above."""
    runner_cfg = {key: value for key, value in toy_config('unused').items()
                  if key not in ('work_dir', 'resume', 'experiment_name')}
    return dict(runner_cfg, experiment=dict(
        name='ranks', seeds=[0], variants=dict(a=dict(), b=dict()),
        stages=[dict(type='TrainStage', name='train'),
                dict(type='RankFilesStage', name='files'),
                dict(type='ManifestProbeStage', name='probe')]))


def count_manifest_writes_and_records():
    """Count the manifest writes in ``COUNTS``, and the records (instead of writing them)."""
    write = harness.core.stage.atomic_write_json

    def counted_write(*args, **kwargs):
        COUNTS['manifest_writes'] += 1
        return write(*args, **kwargs)

    def counted_record(*args, **kwargs):
        COUNTS['records'] += 1

    harness.core.stage.atomic_write_json = counted_write
    harness.experiment.record_evaluation = counted_record


def slow_rank0_removals():
    """Rank 0 takes a second to remove the ``files`` stage's folder: without a barrier after
    the removal, rank 1 would write into the old folder meanwhile and lose its file."""
    remove = shutil.rmtree

    def slow(path, *args, **kwargs):
        if os.path.basename(path) == 'files':
            time.sleep(1)
        return remove(path, *args, **kwargs)

    if get_rank() == 0:
        shutil.rmtree = slow


def read_manifest(work_dir, variant) -> dict:
    return json.loads((work_dir / variant / 'seed_0' / 'manifest.json').read_text())['stages']


def experiment_on_rank(rank, work_dir):
    """Run the experiment, then re-run variant a with --force; what this rank saw."""
    count_manifest_writes_and_records()
    options = dict(launcher='pytorch', leaderboard_dir=work_dir / 'boards')
    run_experiment(experiment_config(), work_dir, **options)
    first = read_manifest(work_dir, 'a')
    slow_rank0_removals()
    run_experiment(experiment_config(), work_dir, variants=['a'], force=True, **options)
    return dict(probes=PROBES, counts=COUNTS, first=first,
                manifests={variant: read_manifest(work_dir, variant) for variant in 'ab'})


@pytest.fixture(scope='module')
def ranks(tmp_path_factory):
    """What each of 2 ranks saw (they join their process group through run_experiment)."""
    work_dir = tmp_path_factory.mktemp('experiment')
    return run_on_ranks(experiment_on_rank, work_dir, join_group=False)


@pytest.mark.slow
def test_a_forced_rerun_clears_the_folder_before_any_rank_writes_into_it(ranks):
    first, rerun = ranks[0]['first'], ranks[0]['manifests']['a']
    assert first['files']['outputs'] == {'rank0.txt': 1, 'rank1.txt': 1}
    assert rerun['files']['outputs'] == {'rank0.txt': 1, 'rank1.txt': 1}
    assert rerun['files']['run_id'] != first['files']['run_id']
    assert rerun['train']['run_id'] != first['train']['run_id']


@pytest.mark.slow
def test_every_rank_holds_the_manifest_rank_0_alone_writes(ranks):
    first, second = ranks
    assert len(first['probes']) == 3  # variant a, variant b, variant a again
    assert first['probes'] == second['probes']
    assert first['manifests'] == second['manifests']
    last_probe, written = first['probes'][-1], first['manifests']['a']
    assert [last_probe[stage] for stage in ('train', 'files')] == \
        [written[stage] for stage in ('train', 'files')]
    assert first['counts']['manifest_writes'] == 9  # 3 stages x (a, b, a again)
    assert second['counts']['manifest_writes'] == 0


@pytest.mark.slow
def test_checkpoints_are_handed_on_after_rank_0_saved_them_and_copied_once(ranks):
    manifests = ranks[0]['manifests']
    for variant in 'ab':
        checkpoint = manifests[variant]['train']['outputs']['checkpoint']
        assert os.path.isfile(checkpoint) and f'/{variant}/seed_0/train/' in checkpoint
    assert manifests['b']['train']['copied_from'].endswith('/a/seed_0/train')


@pytest.mark.slow
def test_results_are_recorded_by_rank_0_only(ranks):
    assert [result['counts']['records'] for result in ranks] == [3, 0]
