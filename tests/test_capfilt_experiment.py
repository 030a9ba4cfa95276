"""End to end: two variants of the CapFilt-effect ablation on the tiny ToyWorld.

The replicated-data variant runs every CapFilt stage (noisy pre-training, captioner, filter,
caption, filter corpus), the replicated control corpus, pre-training from scratch on it and
the evaluations; the equal-steps diagnostic variant copies the bootstrap stages
from it and pre-trains on the CapFilt corpus through CorpusMixSampler.
"""
import json
import math

import pytest
import torch


@pytest.mark.slow
def test_replicated_and_equal_steps_variants_share_the_bootstrap_stages(run_cli, tmp_path):
    boards = tmp_path / 'boards'
    run_cli('configs/ablation_capfilt_effect.py', '--work-dir', str(tmp_path), '--variant',
            'replicated', '--variant', 'capfilt_equal_steps', '--seed', '0',
            cfg_options=['pretrain_epochs=1', 'finetune_epochs=1', 'capfilt_shard_size=16',
                         f'leaderboard_dir={boards}'])
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
    diagnostic = json.loads((tmp_path / 'capfilt_equal_steps' / 'seed_0' /
                             'manifest.json').read_text())['stages']
    for stage in ('pretrain_noisy', 'captioner', 'filter', 'caption_corpus'):
        assert diagnostic[stage]['copied_from'] == str(variant_dir / stage)
        assert diagnostic[stage]['run_id'] == stages[stage]['run_id']
    assert 'copied_from' not in diagnostic['filter_corpus']  # it records results: runs here
    composition = diagnostic['filter_corpus']['outputs']['composition']
    assert composition == replicated['composition']
    # One epoch of the no-CapFilt corpus's size (human + web pairs), batch 32.
    checkpoint = torch.load(diagnostic['pretrain']['outputs']['checkpoint'], weights_only=True)
    assert checkpoint['meta']['iter'] == math.ceil((composition['human'] + composition['web']) / 32)
    board = (boards / 'ablation_capfilt_effect.md').read_text()
    assert 'caption · `toyworld_coco`' in board and 'Paper reference rows' in board
    assert 'capfilt · `toyworld_web`' not in board  # the filter's report is on capfilt.md
    assert '| replicated vs capfilt_equal_steps |' not in board  # only the planned contrasts
