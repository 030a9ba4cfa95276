"""A diverging run stops with a clear message and keeps its last good checkpoint; NaN
similarities and all-empty captions fail loudly instead of crashing obscurely or scoring."""
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mmengine.runner import runner as mmengine_runner
from torch.utils.data import Dataset

from backbones.blip_losses import sample_hard_negatives
from tasks.caption import evaluate_caption
from tests.conftest import TINY_TOYWORLD_OPTIONS
from tests.toy_training import train, weights


def test_a_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    with pytest.raises(FloatingPointError) as error:
        train(tmp_path, lr_jump_at=1, name='exp.variant.seed0.finetune')
    message = str(error.value)
    assert 'finetune' in message and 'epoch 2' in message and 'loss_mse=' in message
    assert 'epoch_1.pth' in message
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['epoch_1.pth']
    assert (tmp_path / 'last_checkpoint').read_text().strip().endswith('epoch_1.pth')
    assert all(torch.isfinite(v).all() for v in weights(tmp_path / 'epoch_1.pth').values())


def test_nan_similarities_name_the_cause_instead_of_crashing_in_multinomial():
    sims = torch.randn(4, 4)
    sims[1, 2] = float('nan')
    with pytest.raises(FloatingPointError, match='NaN or infinite image-text similarities'):
        sample_hard_negatives(sims, sims.T.contiguous(), torch.arange(4))
    sample_hard_negatives(torch.randn(4, 4), torch.randn(4, 4), torch.arange(4))  # still fine


class BlankImages(Dataset):
    gt_file = 'unused.json'

    def __len__(self):
        return 3

    def __getitem__(self, index):
        return dict(image=torch.zeros(3, 8, 8), image_id=index)


class SilentCaptioner(torch.nn.Module):
    """A degenerate model: every caption it writes is empty (as a diverged one's)."""

    def generate_captions(self, images, generator=None, **decoding):
        return [''] * len(images)


def test_all_empty_captions_fail_instead_of_scoring_zero(tmp_path):
    with pytest.raises(ValueError, match='all 3 generated captions are empty') as error:
        evaluate_caption(SilentCaptioner(), BlankImages(), work_dir=tmp_path,
                         cache_key='epoch_2.pth-1-2', metrics=('CIDEr',))
    assert 'epoch_2.pth' in str(error.value)


def test_the_caption_finetune_at_a_huge_learning_rate_fails_naming_the_loss(tiny_toyworld,
                                                                          tmp_path):
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, 'harness/run.py', 'configs/caption_toyworld_tiny.py', '--work-dir',
         str(tmp_path), '--cfg-options', f'toyworld_dir={tiny_toyworld}',
         *TINY_TOYWORLD_OPTIONS, 'optim_wrapper.optimizer.lr=1000000.0'],
        cwd=repo, capture_output=True, text=True, env=dict(os.environ, PYTHONHASHSEED='0'))
    assert done.returncode != 0
    assert 'diverged: non-finite loss' in done.stderr and 'loss_lm=' in done.stderr
    assert not list(tmp_path.glob('best_*.pth'))


def test_a_stage_run_again_within_its_second_gets_fresh_log_state(tmp_path, monkeypatch):
    """mmengine names a runner's logger, message hub and visualizer by experiment name and a
    timestamp to the second; a re-run in that second (here: the clock frozen) whose folder
    was removed used to get the first runner's visualizer and fail writing its config."""
    frozen = time.time()
    monkeypatch.setattr(mmengine_runner.time, 'time', lambda: frozen)
    first = train(tmp_path, max_epochs=1, name='exp.a.seed0.train')
    shutil.rmtree(tmp_path)  # a forced re-run clears the stage folder
    second = train(tmp_path, max_epochs=1, name='exp.a.seed0.train')
    assert first.timestamp == second.timestamp
    assert second.experiment_name != first.experiment_name
    assert second.visualizer is not first.visualizer
    assert (tmp_path / second.timestamp / 'vis_data' / 'config.py').is_file()
