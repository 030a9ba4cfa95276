"""Mistakes fail before anything runs: unknown --cfg-options keys (naming the nearest
names), impossible values (naming the key) and unknown variant names."""
from pathlib import Path

import pytest
from conftest import TINY_TOYWORLD_CFG

from harness import run
from harness.config import check_values, load_config, resolve_config
from harness.core.registry import STAGES
from harness.core.stage import Stage
from harness.experiment import check_experiment, run_experiment, variant_names

BENCHMARK = 'configs/ci_benchmark.py'
CONFIGS = sorted(str(path) for path in Path('configs').glob('*.py'))


def tiny(toyworld_root, **options):
    """--cfg-options (as load_config takes them) selecting the tiny ToyWorld, plus ``options``."""
    return dict(TINY_TOYWORLD_CFG, toyworld_dir=str(toyworld_root), **options)


def test_a_misspelt_top_level_key_fails_naming_the_nearest_names():
    with pytest.raises(KeyError, match=r'pretrain_epoch: `pretrain_epoch` is not a key of the '
                                       r'config \(nearest: pretrain_epochs'):
        load_config(BENCHMARK, {'pretrain_epoch': 1})


def test_a_dotted_key_may_add_a_leaf_but_not_misspell_a_dict_on_its_way():
    options = {'model.vision.layer_norm_eps': 1e-5,        # a new key in an existing dict
               'pretrain_init.vision.path': '/models/deit.pth',  # anything below an empty dict
               'toyworld.n_train': 10, 'toyworld_dir': '/tmp/x',  # the data source's own keys
               'load_from': None}                                 # an mmengine Runner argument
    cfg = load_config(BENCHMARK, options)
    assert cfg['model']['vision']['layer_norm_eps'] == 1e-5
    assert cfg['pretrain_init'] == dict(vision=dict(path='/models/deit.pth'))
    with pytest.raises(KeyError, match=r'`model` has no key `visoin` \(nearest: vision\)'):
        load_config(BENCHMARK, {'model.visoin.image_size': 32})
    with pytest.raises(KeyError, match=r'`retrieval_k` is 8, not a dict'):
        load_config(BENCHMARK, {'retrieval_k.value': 3})
    with pytest.raises(KeyError, match=r'`experiment.stages` is a list of 4 items'):
        load_config(BENCHMARK, {'experiment.stages.7.name': 'x'})


def test_the_data_source_keys_are_known_to_a_config_that_does_not_use_the_source():
    cfg = load_config('configs/eval_caption_coco.py',
                      {'data_root': 'toyworld', 'toyworld.seed': 1, 'toyworld_dir': '/tmp/x'})
    assert cfg['toyworld'] == dict(seed=1) and cfg['toyworld_dir'] == '/tmp/x'


def test_the_cli_reports_an_unknown_key_in_one_line_and_runs_nothing(tmp_path, capsys):
    code = run.main([BENCHMARK, '--work-dir', str(tmp_path / 'work'),
                     '--cfg-options', 'pretrain_epoch=1'])
    err = capsys.readouterr().err
    assert code == 2 and 'nearest: pretrain_epochs' in err and err.count('\n') == 1
    assert not (tmp_path / 'work').exists()


def test_value_rules_name_each_impossible_key():
    problems = {'pretrain_epochs': -1, 'warmup_epochs': 0, 'lr': 0.0,
                'train_cfg': dict(max_epochs=0), 'loader': dict(batch_size=0),
                'optim': dict(optimizer=dict(lr=-1e-3)), 'options': dict(k=0),
                'retrieval_k': 2.5, 'unset': dict(batch_size=None)}
    with pytest.raises(ValueError) as error:
        check_values(problems, 'configs/mine.py')
    message = str(error.value)
    for expected in ('pretrain_epochs = -1', 'train_cfg.max_epochs = 0',
                     'loader.batch_size = 0', 'optim.optimizer.lr = -0.001', 'options.k = 0',
                     'retrieval_k = 2.5'):
        assert expected in message
    assert 'warmup_epochs' not in message and 'lr = 0.0' not in message  # allowed values
    assert 'unset' not in message


@pytest.mark.parametrize('options, key', [
    ({'pretrain_epochs': -1}, 'pretrain_epochs = -1'),
    ({'finetune_batch_size': 0}, 'finetune_batch_size = 0'),
    ({'retrieval_k': 0}, 'retrieval_k = 0'),
    ({'finetune_optim_wrapper.optimizer.lr': -1e-4}, 'finetune_optim_wrapper.optimizer.lr'),
])
def test_an_experiment_with_an_impossible_value_fails_before_any_stage_runs(
        tiny_toyworld, tmp_path, options, key):
    cfg = load_config(BENCHMARK, tiny(tiny_toyworld, **options))
    with pytest.raises(ValueError, match=key.replace('.', r'\.')):
        run_experiment(cfg, tmp_path / 'work', leaderboard_dir=tmp_path / 'boards')
    assert not (tmp_path / 'work').exists()


def test_a_plain_config_with_max_epochs_below_one_fails_before_training(tiny_toyworld, tmp_path,
                                                                        capsys):
    options = [f'{key}={value}' for key, value in tiny(tiny_toyworld).items()]
    code = run.main(['configs/pretrain_toyworld_tiny.py', '--work-dir', str(tmp_path / 'work'),
                     '--cfg-options', 'train_cfg.max_epochs=-1', *options])
    err = capsys.readouterr().err
    assert code == 2 and 'train_cfg.max_epochs = -1 (must be a whole number >= 1)' in err
    assert not (tmp_path / 'work').exists()


@pytest.mark.parametrize('config', CONFIGS)
def test_every_shipped_config_passes_the_value_rules(config, tiny_toyworld, tmp_path):
    plain = load_config(config)
    options = tiny(tiny_toyworld)
    if plain.get('data_root') is None:  # real data: the user names the folders
        options.update(data_root=str(tmp_path), bert_dir=str(tmp_path / 'bert'))
    if 'checkpoint' in plain:
        options.update(checkpoint=str(tmp_path / 'model.pth'))
    cfg = load_config(config, options)
    if 'experiment' in cfg:
        check_experiment(cfg, variant_names(cfg))
    else:
        check_values(resolve_config(cfg), config)


RAN = []


@STAGES.register_module(force=True)
class NoteStage(Stage):
    """Notes that it ran."""

    def run(self, ctx):
        RAN.append(ctx.variant)
        return {}


def test_every_variant_name_is_checked_before_any_variant_runs(tmp_path):
    cfg = dict(experiment=dict(name='names', seeds=[0], variants=dict(base=dict(), large=dict()),
                               stages=[dict(type='NoteStage', name='note')]))
    RAN.clear()
    with pytest.raises(KeyError, match=r'--variant lareg: .*\(nearest: large\)'):
        run_experiment(cfg, tmp_path, variants=['base', 'lareg'],
                       leaderboard_dir=tmp_path / 'boards')
    assert RAN == []
