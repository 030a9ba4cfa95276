"""The README's worked plugin example: an out-of-tree backbone and task, by config alone."""
import json

import pytest

from tests.conftest import TINY_TOYWORLD_OPTIONS

CONFIG = 'tests/plugin_example/patch_backbone_config.py'


@pytest.mark.slow
def test_out_of_tree_backbone_and_task_train_and_evaluate(run_cli, tmp_path):
    work = tmp_path / 'work'
    boards = tmp_path / 'boards'
    run_cli(CONFIG, '--work-dir', str(work), cfg_options=[f'leaderboard_dir={boards}'])
    records = [json.loads(line) for line in
               (work / 'all_but_sa' / 'seed_0' / 'results.jsonl').read_text().splitlines()]
    by_task = {record['task']: record for record in records}
    assert set(by_task) == {'caption', 'retrieval', 'caption_length'}
    length = by_task['caption_length']
    assert length['units'] == {'words_per_caption': 'words'}
    assert length['higher_is_better'] == {'words_per_caption': False}
    assert 0 < length['metrics']['words_per_caption'] <= 20
    assert length['extra']['counts']['images'] == len(length['extra']['per_sample'][
        'words_per_caption'])
    # The swapped backbone is what was trained: its FLOPs are those of the patch MLP.
    assert by_task['caption']['flops'] < 0.01
    assert (boards / 'plugin_example.md').exists()
    assert TINY_TOYWORLD_OPTIONS  # the run used the tiny ToyWorld (see conftest.run_cli)
