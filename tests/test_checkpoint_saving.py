"""Checkpoints survive a crash or a full disk during a save, and --resume finds a complete one."""
import pytest
import torch

from harness.checkpoint_files import checkpoint_is_complete, resume_checkpoint
from tests.toy_training import fill_disk_on, train, weights


def assert_same_weights(expected, actual):
    assert expected.keys() == actual.keys()
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith('.tmp'))


def test_a_save_that_crashes_keeps_the_previous_checkpoint_and_resume_finishes(tmp_path,
                                                                               monkeypatch):
    train(tmp_path / 'straight')
    work = tmp_path / 'interrupted'
    train(work, max_epochs=1)
    real_save = torch.save

    def save_half_then_die(obj, file, *args, **kwargs):
        real_save(obj, file, *args, **kwargs)
        file.truncate(file.tell() // 2)
        raise RuntimeError('killed during the save')

    monkeypatch.setattr(torch, 'save', save_half_then_die)
    with pytest.raises(RuntimeError, match='killed during the save'):
        train(work, resume=True)
    monkeypatch.undo()
    assert sorted(p.name for p in work.glob('*.pth')) == ['epoch_1.pth']
    assert checkpoint_is_complete(work / 'epoch_1.pth') and leftovers(work) == []
    assert (work / 'last_checkpoint').read_text().strip().endswith('epoch_1.pth')

    train(work, resume=True)
    assert sorted(p.name for p in work.glob('*.pth')) == ['epoch_2.pth']  # max_keep_ckpts=1
    assert_same_weights(weights(tmp_path / 'straight' / 'epoch_2.pth'),
                        weights(work / 'epoch_2.pth'))


def test_a_full_disk_during_a_save_leaves_no_partial_file_and_a_rerun_continues(tmp_path,
                                                                                monkeypatch):
    fill_disk_on(monkeypatch, 'epoch_2.pth')
    with pytest.raises(OSError, match='No space left'):
        train(tmp_path)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['epoch_1.pth']
    assert checkpoint_is_complete(tmp_path / 'epoch_1.pth') and leftovers(tmp_path) == []
    # space freed: the re-run resumes from epoch 1 and finishes
    runner = train(tmp_path, resume=True)
    assert runner.epoch == 2 and checkpoint_is_complete(tmp_path / 'epoch_2.pth')


def test_resume_falls_back_to_the_newest_complete_checkpoint(tmp_path):
    train(tmp_path, max_keep_ckpts=2)
    newest = tmp_path / 'epoch_2.pth'
    newest.write_bytes(newest.read_bytes()[:1000])  # as a kill -9 mid-write left it
    assert resume_checkpoint(tmp_path)[0] == str(tmp_path / 'epoch_1.pth')
    runner = train(tmp_path, resume=True, max_epochs=3, max_keep_ckpts=2)
    assert runner.epoch == 3 and checkpoint_is_complete(tmp_path / 'epoch_3.pth')


def test_a_pointer_to_a_missing_file_or_nothing_at_all_is_handled(tmp_path):
    assert resume_checkpoint(tmp_path)[0] is None
    train(tmp_path, max_epochs=1)
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_9.pth'))
    path, problem = resume_checkpoint(tmp_path)
    assert path == str(tmp_path / 'epoch_1.pth') and 'epoch_9.pth' in problem
    (tmp_path / 'epoch_1.pth').unlink()
    runner = train(tmp_path, resume=True, max_epochs=1)  # nothing complete: starts afresh
    assert runner.epoch == 1 and checkpoint_is_complete(tmp_path / 'epoch_1.pth')


def test_temp_files_of_a_killed_save_are_removed_when_training_starts(tmp_path):
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / '.epoch_2.pth.k3j1x.tmp').write_bytes(b'half')
    train(tmp_path, max_epochs=1)
    assert leftovers(tmp_path) == []
