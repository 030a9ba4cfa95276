"""A tiny BLIP pre-trains on ToyWorld through harness/run.py and every loss term falls."""
import json

import numpy as np


def logged_losses(work_dir):
    scalars = next(work_dir.glob('*/vis_data/scalars.json'))
    rows = [json.loads(line) for line in scalars.read_text().splitlines() if line.strip()]
    return {term: [row[term] for row in rows if term in row]
            for term in ('loss_itc', 'loss_itm', 'loss_lm')}


def test_itc_itm_and_lm_losses_fall(run_cli, tmp_path):
    run_cli('configs/pretrain_toyworld_tiny.py', '--work-dir', str(tmp_path), cfg_options=[
        'train_dataloader.batch_size=16', 'train_cfg.max_epochs=4', 'param_scheduler.0.end=4',
        'default_hooks.logger.interval=1'])
    losses = logged_losses(tmp_path)
    assert (tmp_path / 'epoch_4.pth').exists()
    for term, values in losses.items():
        assert len(values) >= 20, term
        first, last = np.mean(values[:4]), np.mean(values[-4:])
        assert last < first, f'{term} did not fall: first {values[:4]}, last {values[-4:]}'
