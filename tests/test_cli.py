"""The command line (harness/run.py): errors, --help, --print-config, --name, --board-dir,
--limit, and where ad-hoc evaluation boards go; plus board warnings on colliding runs."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY_TOYWORLD_CFG, TINY_TOYWORLD_OPTIONS

from backbones.checkpoint import save_official_checkpoint
from harness import run
from harness.boards import writer
from harness.config import load_config, resolve_config
from harness.core.registry import DATASETS, MODELS
from harness.leaderboard import render_leaderboard
from harness.results import ResultRecord

REPO = Path(__file__).resolve().parents[1]
# An eval config whose model is a tiny BLIP captioner, so a checkpoint of it is quick to
# make and to evaluate on the tiny ToyWorld.
TINY_EVAL_CONFIG = f"""
_base_ = ['{REPO}/configs/eval_caption_coco.py']
data_root = 'toyworld'
eval_batch_size = 2
caption_test_dataset = dict(image_size=32)
model = dict(_delete_=True, type='Blip',
             vision=dict(type='BlipViT', arch='vit_tiny_patch8', image_size=32),
             tokenizer=dict(type='BlipTokenizer', vocab='${{data_root}}/vocab'),
             text_arch='tiny', embed_dim=64, queue_size=0, momentum=0.0,
             max_text_length=30, losses=('lm',), prompt='a picture of ')
"""


def tiny_options(toyworld_root) -> list[str]:
    """--cfg-options entries selecting the tiny ToyWorld."""
    return ['data_root=toyworld', f'toyworld_dir={toyworld_root}', *TINY_TOYWORLD_OPTIONS]


def cli(capsys, *argv):
    """``run.main(argv)`` in this process: (exit code, stdout, stderr)."""
    code = run.main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_examples_and_every_shipped_config(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run.main(['--help'])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for example in ('configs/eval_caption_coco.py --cfg-options', '--limit 20',
                    'configs/ablation_sharing.py --seed 0', '--leaderboard'):
        assert example in text
    for config in sorted((REPO / 'configs').glob('*.py')):
        assert config.name in text
    assert 'The CI score-regression benchmark' in text  # the first comment line


def test_the_entry_point_freezes_its_imports_and_leaves_collection_on():
    probe = ('import gc, sys; sys.argv = ["x"]; import harness.run; '
             'print(gc.isenabled(), gc.get_freeze_count())')
    done = subprocess.run([sys.executable, '-c', probe], cwd=REPO, capture_output=True,
                          text=True, check=True)
    enabled, frozen = done.stdout.split()
    assert enabled == 'True' and int(frozen) > 100_000


def test_a_run_that_writes_no_board_imports_neither_scipy_nor_pandas():
    # Every --jobs child imports the entry point and every registry plugin; only the
    # parent's board needs SciPy's tests and pandas' frames (0.6 s of imports together).
    probe = ('import importlib, sys; sys.argv = ["x"]; import harness.run; '
             'from harness.core.registry import plugin_modules; '
             '[importlib.import_module(name) for name in '
             'plugin_modules("backbones") + plugin_modules("tasks")]; '
             'print(sorted({"scipy", "pandas"} & set(sys.modules)))')
    done = subprocess.run([sys.executable, '-c', probe], cwd=REPO, capture_output=True,
                          text=True, check=True)
    assert done.stdout.split() == ['[]']


def test_missing_config_file_is_one_line_exit_2():
    done = subprocess.run([sys.executable, 'harness/run.py', 'configs/no_such.py'], cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if 'error' in line]
    assert errors == ['harness/run.py: error: config file configs/no_such.py does not exist; '
                      'the shipped configs are listed by harness/run.py --help '
                      '(--debug shows the traceback)']
    assert 'Traceback' not in done.stderr


@pytest.mark.parametrize('options, fix', [
    (['model.sharing', 'none'], 'write model.sharing=none'),
    (['checkpoint'], 'write checkpoint=VALUE'),
    (['model sharing=none'], 'is not a config key'),
])
def test_bad_cfg_options_name_the_key_value_fix(capsys, options, fix):
    with pytest.raises(SystemExit) as exit_info:
        run.main(['configs/ci_benchmark.py', '--cfg-options', *options])
    assert exit_info.value.code == 2
    assert fix in capsys.readouterr().err


def test_errors_of_our_code_are_one_line_and_debug_shows_the_traceback(capsys, tmp_path):
    argv = ['configs/eval_caption_coco.py', '--print-config', '--work-dir', tmp_path,
            '--cfg-options', 'checkpoint=/models/a.pth']
    code, out, err = cli(capsys, *argv)
    assert code == 2
    assert err.startswith('harness/run.py: error: ') and err.count('\n') == 1
    assert 'pass --cfg-options data_root=' in err
    with pytest.raises(ValueError, match='data_root'):
        run.main([str(arg) for arg in argv] + ['--debug'])


def test_a_key_error_shows_its_message_without_quotes(capsys, tiny_toyworld):
    code, _, err = cli(capsys, 'configs/ci_benchmark.py', '--print-config', '--variant', 'nope',
                       '--cfg-options', *tiny_options(tiny_toyworld))
    assert code == 2
    assert "error: no variant 'nope' in " in err and 'declares' in err


def test_experiment_only_options_are_refused_for_a_plain_config(capsys):
    code, _, err = cli(capsys, 'configs/caption_toyworld_tiny.py', '--limit', '3')
    assert code == 2
    assert 'declares no `experiment`; --limit apply to experiment configs only' in err


def test_print_config_resolves_everything_and_runs_nothing(capsys, tmp_path, tiny_toyworld):
    work = tmp_path / 'work'
    code, out, _ = cli(capsys, 'configs/eval_retrieval_flickr30k.py', '--print-config',
                       '--work-dir', work, '--limit', '5', '--cfg-options',
                       'checkpoint=/models/model_base_retrieval_flickr.pth', 'bert_dir=/bert',
                       *tiny_options(tiny_toyworld))
    assert code == 0
    assert not work.exists()  # nothing ran
    assert '${' not in out  # every reference resolved
    assert f"# board: {work}/eval_retrieval_flickr30k.md" in out  # ad-hoc: in the work dir
    assert "# ---- variant 'model_base_retrieval_flickr', seeds [0]" in out
    assert f"data_root = '{tiny_toyworld}'" in out  # the data source made a folder
    assert f"'data_root': '{tiny_toyworld}'" in out
    assert "'limit': 5" in out and "'k': 128" in out


def test_print_config_of_a_committed_experiment_keeps_its_board_in_leaderboards(
        capsys, tmp_path, tiny_toyworld):
    code, out, _ = cli(capsys, 'configs/ci_benchmark.py', '--print-config', '--work-dir',
                       tmp_path, '--cfg-options', *tiny_options(tiny_toyworld))
    assert code == 0
    assert '# board: leaderboards/ci_benchmark.md' in out
    assert "'limit'" not in out
    code, out, _ = cli(capsys, 'configs/ci_benchmark.py', '--print-config', '--board-dir',
                       tmp_path / 'boards', '--name', 'mine', '--cfg-options',
                       *tiny_options(tiny_toyworld))
    assert f'# board: {tmp_path}/boards/ci_benchmark.md' in out
    assert "# ---- variant 'mine'" in out


def test_name_needs_a_single_variant(capsys):
    code, _, err = cli(capsys, 'configs/ablation_sharing.py', '--print-config', '--name', 'x')
    assert code == 2
    assert '--name x:' in err and 'declares 4 variants' in err


def test_limit_keeps_retrieval_images_and_their_texts_together(tiny_toyworld):
    cfg = resolve_config(load_config('configs/ci_benchmark.py', dict(
        TINY_TOYWORLD_CFG, toyworld_dir=str(tiny_toyworld))))
    full = DATASETS.build(cfg['retrieval_test_dataset'])
    limited = DATASETS.build(cfg['retrieval_test_dataset']).limit(2)
    assert len(full) > 2 and len(limited) == 2
    kept = full.img2txt[0] + full.img2txt[1]
    assert limited.texts == [full.texts[i] for i in kept]
    assert limited.txt2img == [full.txt2img[i] for i in kept]
    assert limited.img2txt == full.img2txt[:2]
    caption = DATASETS.build(cfg['caption_test_dataset']).limit(3)
    assert len(caption) == 3 and len(caption.image_ids) == 3
    assert caption[2]['image_id'] == caption.image_ids[2]


def test_limited_eval_of_a_checkpoint_goes_to_the_work_dir(run_cli, tmp_path, tiny_toyworld):
    config = tmp_path / 'eval_tiny.py'
    config.write_text(TINY_EVAL_CONFIG)
    cfg = resolve_config(load_config(str(config), dict(
        TINY_TOYWORLD_CFG, toyworld_dir=str(tiny_toyworld))))
    torch.manual_seed(0)
    checkpoint = tmp_path / 'tiny_captioner.pth'
    save_official_checkpoint(MODELS.build(cfg['model']).eval(), checkpoint)
    boards = REPO / 'leaderboards'
    before = {path.name: path.read_bytes() for path in boards.glob('*.md')}
    work = tmp_path / 'work'
    run_cli(str(config), '--work-dir', str(work), '--limit', '2', '--device', 'cpu',
            cfg_options=[f'checkpoint={checkpoint}'])
    records = [json.loads(line) for line in
               (work / 'tiny_captioner' / 'seed_0' / 'results.jsonl').read_text().splitlines()]
    assert [(r['variant'], r['extra']['limit'], r['extra']['counts']) for r in records] == \
        [('tiny_captioner', 2, {'images': 2})]
    assert len(records[0]['extra']['per_sample']['CIDEr']) == 2  # only those images scored
    board = (work / 'eval_caption_coco.md').read_text()
    assert '| tiny_captioner |' in board
    assert 'Smoke run: tiny_captioner (caption/coco_karpathy/test) evaluated only the first ' \
           '2 items (--limit 2)' in board
    assert {path.name: path.read_bytes() for path in boards.glob('*.md')} == before


def _record(variant='a', config_hash='h1', timestamp='2024-01-01T00:00:00+00:00', **extra):
    return ResultRecord(experiment='probe', variant=variant, task='caption', dataset='toy',
                        split='test', metrics={'CIDEr': 10.0}, params=1, seed=0,
                        config_hash=config_hash, timestamp=timestamp, extra=extra)


def test_colliding_runs_are_warned_on_the_board_and_in_the_log(tmp_path, monkeypatch):
    logged = []
    monkeypatch.setattr(writer, 'print_log', lambda message, **_: logged.append(message))
    rerun = [_record(), _record(timestamp='2024-01-02T00:00:00+00:00')]
    assert '**Warning:**' not in render_leaderboard('probe', rerun, None)  # same run again
    records = [_record(), _record(config_hash='h2', timestamp='2024-01-02T00:00:00+00:00'),
               _record(variant='b')]
    board = writer.write_leaderboard('probe', records, None, tmp_path).read_text()
    assert "> **Warning:** 2 records of variant 'a' on caption/toy/test seed 0 come from 2 " \
           'different runs (config hashes h1, h2); only the latest' in board
    assert "variant 'b'" not in board.split('**Warning:**')[1].split('\n')[0]
    assert len(logged) == 1 and "variant 'a'" in logged[0]
    limited_then_full = [_record(limit=5), _record(timestamp='2024-01-02T00:00:00+00:00')]
    board = render_leaderboard('probe', limited_then_full, None)
    assert 'come from 2 different runs' in board and 'Smoke run' not in board
