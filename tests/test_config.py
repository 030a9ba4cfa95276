"""Config references (``'${name}'``, whole or inside a string) and ``data_root`` resolution;
every config under configs/ loads and resolves with no reference left over."""
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY_TOYWORLD_CFG

from harness.config import load_config, resolve_config, resolve_references
from harness.experiment import variant_config, variant_names
from tasks.caption.evaluate import evaluate_caption

CONFIGS = sorted(str(path) for path in Path('configs').glob('*.py'))


def test_a_whole_string_reference_is_replaced_by_a_copy_of_any_value():
    cfg = dict(dataset=dict(type='X', size=3), epochs=5, checkpoint=None,
               stage=dict(dataset='${dataset}', max_epochs='${epochs}', ckpt='${checkpoint}'))
    stage = resolve_references(cfg['stage'], cfg)
    assert stage == dict(dataset=dict(type='X', size=3), max_epochs=5, ckpt=None)
    stage['dataset']['size'] = 4
    assert cfg['dataset']['size'] == 3


def test_a_reference_inside_a_string_is_interpolated_and_resolved_transitively():
    cfg = dict(data_root='/data/coco', split='test', epochs=2, ann='annotations/${split}.json',
               gt='${data_root}/${ann}', ckpt='epoch_${epochs}.pth')
    assert resolve_references(['${gt}', '${ckpt}'], cfg) == [
        '/data/coco/annotations/test.json', 'epoch_2.pth']


def test_an_undefined_reference_names_the_key_and_the_config_file():
    cfg = dict(_config_file='configs/mine.py', stage=dict(dataset='${missing_dataset}'))
    with pytest.raises(KeyError, match=r'missing_dataset.*configs/mine\.py'):
        resolve_config(cfg)
    with pytest.raises(KeyError, match=r'`nope`, which configs/mine\.py'):
        resolve_references('${nope}/vocab', cfg)


def test_a_reference_cycle_and_an_unset_interpolated_value_fail_clearly():
    with pytest.raises(ValueError, match='a -> b -> a'):
        resolve_references('${a}', dict(a='${b}', b='${a}'))
    with pytest.raises(ValueError, match='--cfg-options bert_dir='):
        resolve_references('${bert_dir}/vocab.txt', dict(bert_dir=None))


def test_data_root_toyworld_is_the_registered_source_built_from_the_spec(tiny_toyworld):
    cfg = load_config('configs/ci_benchmark.py',
                      dict(TINY_TOYWORLD_CFG, toyworld_dir=str(tiny_toyworld)))
    assert cfg['data_root'] == 'toyworld'
    resolved = resolve_config(cfg)
    assert resolved['data_root'] == str(tiny_toyworld)
    assert resolved['caption_test_dataset']['data_root'] == str(tiny_toyworld)
    assert resolved['model']['tokenizer']['vocab'] == f'{tiny_toyworld}/vocab'
    # toyworld_dir is where the source keeps the data: a folder that is not a ToyWorld is refused.
    with pytest.raises(FileExistsError):
        resolve_config(dict(cfg, toyworld_dir=str(tiny_toyworld / 'annotations')))


def test_data_root_must_be_set_or_a_known_source_when_referenced(tmp_path):
    cfg = dict(_config_file='configs/mine.py', data_root=None, ds=dict(data_root='${data_root}'))
    with pytest.raises(ValueError, match='--cfg-options data_root='):
        resolve_config(cfg)
    with pytest.raises(ValueError, match="data_root='toyworlds'.*toyworld"):
        resolve_config(dict(cfg, data_root='toyworlds'))
    assert resolve_config(dict(cfg, data_root=str(tmp_path)))['ds']['data_root'] == str(tmp_path)


def test_configs_use_only_the_one_reference_form():
    for path in Path('configs').rglob('*.py'):
        text = path.read_text()
        assert not re.search(r'\{\{|(?<!\$)\{(toyworld_root|data_root|bert_dir)\}', text), path


def leftover_references(value) -> list:
    """Every string inside ``value`` that still holds a ``${...}``."""
    if isinstance(value, dict):
        return [s for v in value.values() for s in leftover_references(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in leftover_references(v)]
    return [value] if isinstance(value, str) and '${' in value else []


def dataset_roots(value) -> set:
    """The ``data_root`` of every dataset dict inside ``value``."""
    if isinstance(value, dict):
        own = {value['data_root']} if 'type' in value and 'data_root' in value else set()
        return own.union(*(dataset_roots(v) for v in value.values()))
    if isinstance(value, (list, tuple)):
        return set().union(*(dataset_roots(v) for v in value))
    return set()


def placeholder_paths(plain: dict, folder: Path) -> dict:
    """The options a real-data config needs from its user (data, BERT and checkpoint
    paths), as paths under ``folder``."""
    options = {}
    if plain.get('data_root') is None:  # real data: the user names the folders
        options.update(data_root=str(folder), bert_dir=str(folder / 'bert'))
    if 'checkpoint' in plain:
        options.update(checkpoint=str(folder / 'model.pth'))
    return options


@pytest.mark.parametrize('config', CONFIGS)
def test_every_config_loads_and_resolves(config, tiny_toyworld, tmp_path):
    plain = load_config(config)
    cfg = load_config(config, dict(TINY_TOYWORLD_CFG, toyworld_dir=str(tiny_toyworld),
                                   **placeholder_paths(plain, tmp_path)))
    folder = str(tmp_path if plain.get('data_root') is None else tiny_toyworld)
    if 'experiment' not in cfg:
        resolved = resolve_config(cfg)
        assert not leftover_references(resolved)
        assert dataset_roots(resolved) == {folder}
        return
    for variant in variant_names(cfg):
        settings = resolve_config(variant_config(cfg, variant))
        stages = resolve_references(cfg['experiment']['stages'], settings)
        assert not leftover_references([settings, stages]), variant
        assert dataset_roots(stages) == {folder}, variant
    assert not leftover_references(resolve_references(cfg.get('leaderboard'), cfg))


def caption_metric_families(stage: dict) -> set:
    """The caption metric families an ``EvaluateStage`` of task ``caption`` computes."""
    default = inspect.signature(evaluate_caption).parameters['metrics'].default
    return set(stage.get('options', {}).get('metrics', default))


def board_configs() -> list:
    """The shipped configs of experiments that write a board."""
    return [config for config in CONFIGS
            if 'experiment' in (plain := load_config(config)) and plain.get('leaderboard')]


@pytest.mark.parametrize('config', board_configs())
def test_every_caption_metric_a_board_shows_is_computed(config, tmp_path):
    cfg = load_config(config, placeholder_paths(load_config(config), tmp_path))
    shown = {'BLEU' if metric.startswith('BLEU-') else metric
             for task, _, _, metric in cfg['leaderboard'].get('primary_metrics', [])
             if task == 'caption'}
    for variant in variant_names(cfg):
        for stage in resolve_references(cfg['experiment']['stages'], variant_config(cfg, variant)):
            if stage.get('type') == 'EvaluateStage' and stage.get('task') == 'caption':
                assert shown <= caption_metric_families(stage), (variant, stage['name'])


def test_the_main_job_computes_only_the_caption_metrics_of_blip_table_3():
    cfg = load_config('configs/ablation_sharing.py')
    stages = resolve_references(cfg['experiment']['stages'], variant_config(cfg, 'all'))
    [caption] = [stage for stage in stages if stage.get('task') == 'caption']
    assert caption_metric_families(caption) == {'BLEU', 'CIDEr'}  # no METEOR JVM to start


def test_importing_the_readers_does_not_import_the_toyworld_generator():
    code = ('import sys, tasks.datasets; '
            'assert "tasks.toyworld" not in sys.modules, sorted(sys.modules)')
    subprocess.run([sys.executable, '-c', code], check=True, cwd=Path(__file__).parents[1])
