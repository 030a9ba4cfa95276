"""End to end: the replicated-data variant of the CapFilt-effect ablation on the tiny ToyWorld.

It runs every CapFilt stage (noisy pre-training, captioner, filter, caption, filter corpus),
the replicated control corpus, pre-training from scratch on it and the evaluations.
"""
import json

import pytest


@pytest.mark.slow
def test_replicated_variant_runs_every_capfilt_stage(run_cli, tmp_path):
    boards = tmp_path / 'boards'
    run_cli('configs/ablation_capfilt_effect.py', '--work-dir', str(tmp_path), '--variant',
            'replicated', cfg_options=['pretrain_epochs=1', 'finetune_epochs=1',
                                       'capfilt_shard_size=16', f'leaderboard_dir={boards}'])
    variant_dir = tmp_path / 'replicated' / 'seed_0'
    stages = json.loads((variant_dir / 'manifest.json').read_text())['stages']
    assert all(stage['done'] for stage in stages.values()) and len(stages) == 10
    filtered = stages['filter_corpus']['outputs']
    replicated = stages['replicate_corpus']['outputs']
    assert replicated['corpus_size'] >= filtered['corpus_size']
    records = [json.loads(line) for line in (variant_dir / 'results.jsonl').open()]
    capfilt = next(record for record in records if record['task'] == 'capfilt')
    assert {'noise_ratio_web', 'noise_ratio_synthetic', 'filter_precision', 'filter_recall',
            'filter_f1', 'synthetic_CIDEr'} <= set(capfilt['metrics'])
    board = (boards / 'ablation_capfilt_effect.md').read_text()
    assert 'capfilt · `toyworld_web`' in board and 'Paper reference rows' in board
