"""Evaluating a given checkpoint file (official BLIP layout) without a training stage."""
import pytest
import torch
from conftest import TINY_TOYWORLD_CFG

from backbones.checkpoint import save_official_checkpoint
from harness.config import deep_merge, load_config, resolve_config, resolve_references
from harness.core.registry import DATASETS, MODELS, STAGES, TASKS
from harness.recording import record_evaluation
from harness.core.stage import Manifest, StageContext

EVAL_CONFIGS = ['configs/eval_retrieval_coco.py', 'configs/eval_retrieval_flickr30k.py',
                'configs/eval_caption_coco.py']


def tiny_config(toyworld_root) -> dict:
    options = dict(TINY_TOYWORLD_CFG, toyworld_dir=str(toyworld_root))
    return resolve_config(load_config('configs/ci_benchmark.py', options))


def test_evaluate_stage_scores_a_checkpoint_path(tiny_toyworld, tmp_path):
    cfg = tiny_config(tiny_toyworld)
    torch.manual_seed(0)
    model = MODELS.build(deep_merge(cfg['model'], cfg['retrieval_model'])).eval()
    checkpoint = tmp_path / 'model_retrieval.pth'
    save_official_checkpoint(model, checkpoint)
    stage = STAGES.build(dict(
        type='EvaluateStage', name='eval_retrieval', task='retrieval',
        checkpoint=str(checkpoint), dataset=cfg['retrieval_test_dataset'],
        dataset_name='toyworld_coco', model=cfg['retrieval_model'], options=dict(k=4)))
    work = tmp_path / 'work'
    ctx = StageContext(experiment='eval', variant='checkpoint', seed=0, cfg=cfg,
                       work_dir=work, manifest=Manifest(work), device='cpu',
                       recorder=record_evaluation)
    outputs = stage.run(ctx)
    direct = TASKS.get('retrieval')(model, DATASETS.build(cfg['retrieval_test_dataset']), k=4)
    assert outputs['metrics'] == direct.values()
    assert (work / 'results.jsonl').read_text().count('"task": "retrieval"') == 1


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
