"""Evaluating a given checkpoint file (official BLIP layout) without a training stage."""
import json

import pytest
import torch
from conftest import TINY_TOYWORLD_CFG

from backbones.checkpoint import CheckpointError, save_official_checkpoint
from harness.config import deep_merge, load_config, resolve_config, resolve_references
from harness.core.registry import DATASETS, MODELS, STAGES, TASKS
from harness.recording import record_evaluation
from harness.core.stage import Manifest, StageContext

EVAL_CONFIGS = ['configs/eval_retrieval_coco.py', 'configs/eval_retrieval_flickr30k.py',
                'configs/eval_caption_coco.py']


def tiny_config(toyworld_root) -> dict:
    options = dict(TINY_TOYWORLD_CFG, toyworld_dir=str(toyworld_root))
    return resolve_config(load_config('configs/ci_benchmark.py', options))


def retrieval_checkpoint(cfg, path):
    """A random tiny retrieval model of ``cfg`` saved in official layout at ``path``."""
    torch.manual_seed(0)
    model = MODELS.build(deep_merge(cfg['model'], cfg['retrieval_model'])).eval()
    save_official_checkpoint(model, path)
    return model


def evaluate(cfg, work, **stage_args):
    """Run one retrieval EvaluateStage (k=4) in ``work``; ``(outputs, the records' dicts)``."""
    stage = STAGES.build(dict(
        dict(type='EvaluateStage', name='eval_retrieval', task='retrieval',
             dataset=cfg['retrieval_test_dataset'], dataset_name='toyworld_coco',
             options=dict(k=4)), **stage_args))
    ctx = StageContext(experiment='eval', variant='checkpoint', seed=0, cfg=cfg,
                       work_dir=work, manifest=Manifest(work), device='cpu',
                       recorder=record_evaluation)
    outputs = stage.run(ctx)
    lines = (work / 'results.jsonl').read_text().splitlines()
    return outputs, [json.loads(line) for line in lines]


def test_evaluate_stage_scores_a_checkpoint_path(tiny_toyworld, tmp_path):
    cfg = tiny_config(tiny_toyworld)
    checkpoint = tmp_path / 'model_retrieval.pth'
    model = retrieval_checkpoint(cfg, checkpoint)
    outputs, [record] = evaluate(cfg, tmp_path / 'work', checkpoint=str(checkpoint),
                                 model=cfg['retrieval_model'])
    direct = TASKS.get('retrieval')(model, DATASETS.build(cfg['retrieval_test_dataset']), k=4)
    assert outputs['metrics'] == direct.values()
    load = record['extra']['load']
    assert load['loaded'] == load['expected'] > 0 and load['strict']
    assert load['source'] == str(checkpoint)


def test_evaluate_stage_builds_the_model_from_the_checkpoint(tiny_toyworld, tmp_path):
    cfg = tiny_config(tiny_toyworld)
    checkpoint = tmp_path / 'model_retrieval.pth'
    model = retrieval_checkpoint(cfg, checkpoint)
    vocab = cfg['model']['tokenizer']['vocab']
    cfg = dict(cfg, model=dict(type='BlipFromCheckpoint', checkpoint=str(checkpoint),
                               bert_dir=vocab, vision=dict(num_heads=3),
                               text_overrides=dict(num_attention_heads=4),
                               image_pool=model.image_pool, max_text_length=35),
               retrieval_test_dataset=dict(cfg['retrieval_test_dataset'], image_size=None))
    outputs, [record] = evaluate(cfg, tmp_path / 'work', checkpoint=str(checkpoint))
    direct = TASKS.get('retrieval')(model, DATASETS.build(tiny_config(tiny_toyworld)[
        'retrieval_test_dataset']), k=4)
    assert outputs['metrics'] == direct.values()
    assert record['params'] == model.num_parameters()


def test_evaluate_stage_refuses_a_checkpoint_missing_weights_unless_not_strict(
        tiny_toyworld, tmp_path):
    cfg = tiny_config(tiny_toyworld)
    checkpoint = tmp_path / 'model_caption.pth'
    torch.manual_seed(0)
    save_official_checkpoint(MODELS.build(deep_merge(cfg['model'], cfg['caption_model'])),
                             checkpoint)  # no ITC/ITM heads: a retrieval model lacks weights
    with pytest.raises(CheckpointError, match=r'itm_head \(2\)'):
        evaluate(cfg, tmp_path / 'strict', checkpoint=str(checkpoint),
                 model=cfg['retrieval_model'])
    assert not (tmp_path / 'strict' / 'results.jsonl').exists()

    _, [record] = evaluate(cfg, tmp_path / 'lenient', checkpoint=str(checkpoint),
                           model=cfg['retrieval_model'], strict=False)
    load = record['extra']['load']
    assert not load['strict'] and load['loaded'] < load['expected']
    assert 'itm_head (2)' in load['not_loaded_modules']


@pytest.mark.parametrize('config', EVAL_CONFIGS)
def test_eval_configs_need_a_checkpoint_and_name_the_option(config, tmp_path):
    cfg = load_config(config, {'data_root': str(tmp_path), 'bert_dir': str(tmp_path)})
    stage_cfg = resolve_references(cfg['experiment']['stages'], cfg)[0]
    with pytest.raises(ValueError, match='--cfg-options checkpoint='):
        STAGES.build(stage_cfg)
    stage = STAGES.build(dict(stage_cfg, checkpoint=str(tmp_path / 'missing.pth')))
    ctx = StageContext(experiment='eval', variant='checkpoint', seed=0, cfg=cfg,
                       work_dir=tmp_path, manifest=Manifest(tmp_path), device='cpu',
                       recorder=record_evaluation)
    with pytest.raises(FileNotFoundError, match='missing.pth does not exist'):
        stage.run(ctx)


@pytest.mark.parametrize('config', EVAL_CONFIGS)
def test_eval_configs_name_a_missing_data_root_option(config, tmp_path):
    cfg = load_config(config, {'checkpoint': str(tmp_path / 'model.pth'),
                               'bert_dir': str(tmp_path)})
    with pytest.raises(ValueError, match='--cfg-options data_root='):
        resolve_references(cfg['experiment']['stages'], cfg)


@pytest.mark.parametrize('config', EVAL_CONFIGS + ['configs/eval_caption_nocaps.py'])
def test_eval_configs_take_the_model_from_the_checkpoint(config, tmp_path):
    cfg = resolve_config(load_config(config, {'data_root': str(tmp_path),
                                              'checkpoint': str(tmp_path / 'hf_dir')}))
    assert cfg['model']['type'] == 'BlipFromCheckpoint'
    assert cfg['model']['checkpoint'] == str(tmp_path / 'hf_dir')
    assert cfg['model']['bert_dir'] is None  # only an official .pth needs one
    [stage] = [s for s in cfg['experiment']['stages'] if s['split'] != 'test'] or \
        cfg['experiment']['stages'][:1]
    assert stage['dataset']['image_size'] is None  # the model's
