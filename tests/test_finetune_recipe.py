"""BLIP's training recipe around the losses: alpha warm-up, lr schedules, model selection.

Expected values are BLIP's own formulas (salesforce/BLIP pretrain.py, train_caption.py,
train_retrieval.py, utils.py and configs/*.yaml), re-computed here.
"""
import math
from types import SimpleNamespace

import pytest
import torch
from conftest import TINY_TOYWORLD_CFG
from mmengine.registry import PARAM_SCHEDULERS

import tasks.metrics.registered_metrics as registered_metrics
from harness.config import load_config, resolve_config, resolve_references
from harness.core.registry import STAGES
from harness.core.stage import Manifest, StageContext
from harness.experiment import variant_config
from harness.hooks import AlphaWarmupHook

NO_DATA = {'data_root': '/data/never-read'}


# ------------------------------------------------------------------ alpha warm-up
def alpha_scales(warmup_epochs, epochs, length):
    """The hook's factor at every iteration of ``epochs`` epochs of ``length`` iterations."""
    hook = AlphaWarmupHook(warmup_epochs)
    runner = SimpleNamespace(model=SimpleNamespace(alpha_scale=None),
                             train_dataloader=range(length), iter=0)
    scales = {}
    for epoch in range(epochs):
        for i in range(length):
            runner.iter = epoch * length + i  # mmengine's global iteration counter
            hook.before_train_iter(runner, i)
            scales[epoch, i] = runner.model.alpha_scale
    return scales


def test_alpha_warmup_follows_blips_pretraining_and_retrieval_ramps():
    alpha, length = 0.4, 7
    # pretrain.py: alpha = config['alpha'] * min(1, (epoch * len + i) / (2 * len))
    for (epoch, i), scale in alpha_scales(2, 3, length).items():
        assert alpha * scale == pytest.approx(alpha * min(1, (epoch * length + i) / (2 * length)))
    # train_retrieval.py: alpha * min(1, i / len) in epoch 0, alpha afterwards
    for (epoch, i), scale in alpha_scales(1, 3, length).items():
        expected = alpha if epoch > 0 else alpha * min(1, i / length)
        assert alpha * scale == pytest.approx(expected)


def stages_of(config, variant=None):
    """The resolved stages (by name) of a config's variant (its first by default)."""
    cfg = load_config(config, NO_DATA)
    variant = variant or next(iter(cfg['experiment'].get('variants') or {'': None}))
    vcfg = variant_config(cfg, variant) if variant else cfg
    stages = resolve_references(cfg['experiment']['stages'], vcfg)
    return {stage['name']: stage for stage in stages}, vcfg


def warmup_epochs(stage):
    hooks = [hook for hook in stage['runner'].get('custom_hooks', [])
             if hook['type'] == 'AlphaWarmupHook']
    return hooks[0].get('warmup_epochs', 1.0) if hooks else None


def test_configs_warm_alpha_up_over_2_pretraining_and_1_retrieval_epochs():
    stages, _ = stages_of('configs/capfilt.py')
    assert warmup_epochs(stages['pretrain_noisy']) == 2 == warmup_epochs(stages['pretrain'])
    assert warmup_epochs(stages['filter']) == 1
    assert warmup_epochs(stages['captioner']) is None  # LM only: no ITC, no alpha
    shared, _ = stages_of('configs/ablation_capfilt_sharing.py', 'shared')
    assert warmup_epochs(shared['captioner_filter']) == 1
    for config in ('configs/ablation_sharing.py', 'configs/ablation_sharing_gpu.py'):
        assert warmup_epochs(stages_of(config)[0]['pretrain']) == 2
    for config, epochs in (('configs/pretrain_toyworld_tiny.py', 2),
                           ('configs/retrieval_toyworld_tiny.py', 1)):
        hooks = load_config(config, NO_DATA)['custom_hooks']
        assert dict(type='AlphaWarmupHook', warmup_epochs=epochs) in hooks


# ------------------------------------------------------------------ model selection switch
def validates(stage, epochs):
    """Whether a TrainStage validates (and keeps the best) within ``epochs`` epochs."""
    runner = stage['runner']
    return runner.get('val_cfg') is not None and runner['train_cfg']['val_begin'] <= epochs \
        and bool(runner['default_hooks']['checkpoint']['save_best'])


def test_multi_epoch_finetunes_select_by_blips_criteria_and_the_main_job_does_not():
    stages, cfg = stages_of('configs/ablation_sharing.py')
    assert cfg['finetune_epochs'] == 1 and not validates(stages['finetune_caption'], 1)
    for config in ('configs/ci_benchmark.py', 'configs/ablation_sharing_gpu.py'):
        stages, cfg = stages_of(config)
        assert cfg['finetune_epochs'] > 1 and validates(stages['finetune_caption'],
                                                        cfg['finetune_epochs'])
        assert stages['finetune_caption']['runner']['default_hooks']['checkpoint'][
            'save_best'] == 'coco_caption/CIDEr+BLEU-4'
    stages, cfg = stages_of('configs/capfilt.py')
    for name, key in (('captioner', 'coco_caption/CIDEr+BLEU-4'), ('filter', 'retrieval/R_mean')):
        assert validates(stages[name], cfg['finetune_epochs'])
        assert stages[name]['runner']['default_hooks']['checkpoint']['save_best'] == key
    assert stages['filter']['runner']['val_cfg']['type'] == 'RetrievalValLoop'


def test_a_two_epoch_finetune_hands_on_its_best_epoch(tiny_toyworld, tmp_path, monkeypatch):
    """Validation scores epoch 1 above epoch 2: the stage must hand on epoch 1's weights."""
    cfg = resolve_config(load_config('configs/ci_benchmark.py', dict(
        TINY_TOYWORLD_CFG, toyworld_dir=str(tiny_toyworld), finetune_epochs=2)))
    stage_cfg = next(stage for stage in resolve_references(cfg['experiment']['stages'], cfg)
                     if stage['name'] == 'finetune_caption')
    stage_cfg.pop('init_from')  # from scratch: only the selection is under test
    stage_cfg['runner']['train_dataloader']['batch_size'] = 8
    scores = iter([(60.0, 20.0), (50.0, 21.0)])  # (CIDEr, BLEU-4): sums 80 > 71

    def fake_scores(gt_file, results, metrics):
        cider, bleu4 = next(scores)
        return SimpleNamespace(scores={'CIDEr': cider / 100, 'BLEU-4': bleu4 / 100},
                               unavailable={})

    monkeypatch.setattr(registered_metrics, 'coco_caption_metrics', fake_scores)
    monkeypatch.setattr('backbones.blip.Blip.generate_captions',
                        lambda self, images, **decoding: ['a picture'] * len(images))
    ctx = StageContext(experiment='t', variant='v', seed=0, cfg=cfg, work_dir=tmp_path,
                       manifest=Manifest(tmp_path), device='cpu')
    outputs = STAGES.build(stage_cfg).run(ctx)
    assert next(scores, None) is None  # validated after both epochs
    checkpoint = torch.load(outputs['checkpoint'], map_location='cpu', weights_only=False)
    assert checkpoint['meta']['epoch'] == 1
    assert 'CIDEr+BLEU-4_epoch_1' in outputs['checkpoint']


# ------------------------------------------------------------------ lr schedules
def lr_sequence(scheduler_cfgs, base_lr, epochs, length):
    """The lr of every iteration, stepping schedulers as mmengine's ParamSchedulerHook does:
    by-iteration ones after every iteration, by-epoch ones after every epoch."""
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=base_lr)
    schedulers = []
    for cfg in scheduler_cfgs:
        cfg = dict(cfg, optimizer=optimizer)
        # BLIP sets epoch-wise rates once per epoch: none is converted to iterations.
        assert not cfg.pop('convert_to_iter_based', False), cfg
        schedulers.append(PARAM_SCHEDULERS.build(cfg))
    lrs = {}
    for epoch in range(epochs):
        for i in range(length):
            lrs[epoch, i] = optimizer.param_groups[0]['lr']
            for scheduler in schedulers:
                if not scheduler.by_epoch:
                    scheduler.step()
        for scheduler in schedulers:
            if scheduler.by_epoch:
                scheduler.step()
    return lrs


def test_gpu_pretraining_schedule_is_blips_warmup_then_step_decay():
    cfg = load_config('configs/_base_/schedules/blip_gpu.py')
    schedulers = resolve_references(cfg['pretrain_scheduler'], cfg)
    init_lr = cfg['pretrain_optim_wrapper']['optimizer']['lr']
    assert init_lr == 3e-4 and cfg['pretrain_optim_wrapper']['optimizer']['weight_decay'] == 0.05
    length = 3200  # an epoch longer than the 3000 warm-up steps, as BLIP's corpora give
    lrs = lr_sequence(schedulers, init_lr, 3, length)
    for (epoch, i), lr in lrs.items():
        # utils.py: warmup_lr_schedule(step=i, max_step=3000, init_lr=1e-6, max_lr=3e-4) in
        # epoch 0 (after step_lr_schedule), step_lr_schedule(init 3e-4, min 1e-6, 0.9) else.
        expected = min(3e-4, 1e-6 + (3e-4 - 1e-6) * i / 3000) if epoch == 0 \
            else max(1e-6, 3e-4 * 0.9 ** epoch)
        assert lr == pytest.approx(expected, rel=1e-9, abs=1e-15), (epoch, i)


def test_gpu_finetuning_schedule_is_blips_per_epoch_cosine():
    cfg = load_config('configs/_base_/schedules/blip_gpu.py')
    schedulers = resolve_references(cfg['finetune_scheduler'], cfg)
    optimizer = cfg['finetune_optim_wrapper']['optimizer']
    # caption_coco.yaml: init_lr 1e-5, min_lr 0, weight_decay 0.05, max_epoch 5, batch 32.
    assert (optimizer['lr'], optimizer['weight_decay']) == (1e-5, 0.05)
    assert (cfg['finetune_epochs'], cfg['finetune_batch_size']) == (5, 32)
    lrs = lr_sequence(schedulers, 1e-5, 5, 4)
    for (epoch, i), lr in lrs.items():
        # utils.py cosine_lr_schedule, once per epoch (train_caption.py).
        expected = (1e-5 - 0) * 0.5 * (1 + math.cos(math.pi * epoch / 5)) + 0
        assert lr == pytest.approx(expected, rel=1e-9), (epoch, i)
