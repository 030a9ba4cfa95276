"""Shared files get the umask's mode (0644 under 022), and a full disk while writing results
or a manifest leaves the old file and no debris, so a re-run continues."""
import os
import stat

import pytest

from harness.checkpoint_files import AtomicLocalBackend
from harness.core.files import atomic_write_text
from harness.core.registry import STAGES
from harness.core.stage import Manifest, Stage
from harness.experiment import run_experiment
from harness.results import ResultRecord, append_record, read_records
from tests.toy_training import fill_disk_on


@pytest.fixture
def umask():
    """Set the process umask for a test, restoring it afterwards."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize('mask, expected', [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_respect_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    atomic_write_text(tmp_path / 'board.md', 'x')
    assert mode_of(tmp_path / 'board.md') == expected


def test_results_manifests_and_checkpoints_are_readable_by_others(tmp_path, umask):
    umask(0o022)
    append_record(tmp_path, record(0))
    run_experiment(experiment(), tmp_path / 'work', leaderboard_dir=tmp_path / 'boards')
    AtomicLocalBackend().put(b'weights', tmp_path / 'epoch_1.pth')
    for path in [tmp_path / 'results.jsonl', tmp_path / 'work' / 'a' / 'seed_0' /
                 'manifest.json', tmp_path / 'epoch_1.pth']:
        assert mode_of(path) == 0o644, path


def record(seed):
    return ResultRecord(experiment='disk', variant='a', task='caption', dataset='toyworld_coco',
                        split='test', metrics={'CIDEr': 1.0}, params=1, seed=seed)


def leftovers(folder):
    return sorted(p.name for p in folder.rglob('*.tmp'))


def test_a_full_disk_while_appending_results_keeps_the_old_ones(tmp_path, monkeypatch):
    append_record(tmp_path, record(0))
    fill_disk_on(monkeypatch, 'results.jsonl')
    with pytest.raises(OSError, match='No space left'):
        append_record(tmp_path, record(1))
    monkeypatch.undo()
    assert read_records(tmp_path / 'results.jsonl') == [record(0)] and leftovers(tmp_path) == []
    append_record(tmp_path, record(1))  # space freed
    assert read_records(tmp_path / 'results.jsonl') == [record(0), record(1)]


RUNS = []


@STAGES.register_module(force=True)
class NoteStage(Stage):
    """Notes that it ran."""

    def run(self, ctx):
        RUNS.append(self.name)
        return dict(value=self.name)


def experiment():
    return dict(experiment=dict(name='disk', seeds=[0], variants=dict(a=dict()),
                                stages=[dict(type='NoteStage', name='first'),
                                        dict(type='NoteStage', name='second')]))


def test_a_full_disk_while_writing_the_manifest_then_a_rerun_continues(tmp_path, monkeypatch):
    RUNS.clear()
    real_mark_done = Manifest.mark_done

    def disk_fills_at_second(manifest, stage, *args, **kwargs):
        if stage == 'second':
            fill_disk_on(monkeypatch, 'manifest.json')
        return real_mark_done(manifest, stage, *args, **kwargs)

    monkeypatch.setattr(Manifest, 'mark_done', disk_fills_at_second)
    with pytest.raises(OSError, match='No space left'):
        run_experiment(experiment(), tmp_path, leaderboard_dir=tmp_path / 'boards')
    monkeypatch.undo()
    assert leftovers(tmp_path) == []
    RUNS.clear()
    run_experiment(experiment(), tmp_path, leaderboard_dir=tmp_path / 'boards')
    assert RUNS == ['second']  # 'first' was recorded before the disk filled: reused
