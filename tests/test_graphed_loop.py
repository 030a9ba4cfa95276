"""``GraphedTrainLoop``: a pre-training stage whose steps run through ``GraphedTrainStep``
(eager off CUDA: the same training as mmengine's loop) and the setups it refuses."""
from types import SimpleNamespace

import pytest
import torch
from conftest import TINY_TOYWORLD_CFG
from mmengine.optim import OptimWrapper, OptimWrapperDict

from backbones.graphed_loop import graphed_step_for
from harness.config import load_config, resolve_config, resolve_references
from harness.core.registry import STAGES
from harness.core.stage import Manifest, StageContext
from test_model import build


def pretrain_stage_weights(tiny_toyworld, work_dir, **train_cfg):
    """The pre-training stage of the CI benchmark (tiny ToyWorld, 2 epochs, batch 32) run
    with ``train_cfg`` merged in; returns its checkpoint's weights."""
    cfg = resolve_config(load_config('configs/ci_benchmark.py', dict(
        TINY_TOYWORLD_CFG, toyworld_dir=str(tiny_toyworld))))
    stage_cfg = next(stage for stage in resolve_references(cfg['experiment']['stages'], cfg)
                     if stage['name'] == 'pretrain')
    stage_cfg['runner']['train_cfg'].update(train_cfg)
    ctx = StageContext(experiment='t', variant='v', seed=0, cfg=cfg, work_dir=work_dir,
                       manifest=Manifest(work_dir), device='cpu')
    outputs = STAGES.build(stage_cfg).run(ctx)
    return torch.load(outputs['checkpoint'], map_location='cpu', weights_only=True)['state_dict']


def test_a_graphed_pretraining_stage_trains_as_mmengines_loop_off_cuda(tiny_toyworld, tmp_path):
    plain = pretrain_stage_weights(tiny_toyworld, tmp_path / 'plain')
    graphed = pretrain_stage_weights(tiny_toyworld, tmp_path / 'graphed',
                                     type='GraphedTrainLoop', pad_to_multiple_of=None)
    assert plain.keys() == graphed.keys()
    assert all(torch.equal(plain[name], graphed[name]) for name in plain)
    padded = pretrain_stage_weights(tiny_toyworld, tmp_path / 'padded', type='GraphedTrainLoop')
    moved = [name for name in plain if not torch.equal(plain[name], padded[name])]
    assert moved  # padding to a multiple of 8 changes the rounding, not the training:
    for name in plain:
        torch.testing.assert_close(padded[name], plain[name], rtol=1e-3, atol=1e-4)


def runner_with(model, **wrapper_options):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    return SimpleNamespace(model=model, optim_wrapper=OptimWrapper(optimizer, **wrapper_options))


def test_the_loop_refuses_what_a_captured_step_cannot_do():
    model = build()
    assert graphed_step_for(runner_with(model), warmup_steps=3).model is model
    with pytest.raises(ValueError, match='accumulative_counts=2.*clip_grad'):
        graphed_step_for(runner_with(model, accumulative_counts=2,
                                     clip_grad=dict(max_norm=1.0)), warmup_steps=3)
    wrappers = OptimWrapperDict(a=runner_with(model).optim_wrapper)
    with pytest.raises(ValueError, match='optim_wrapper is OptimWrapperDict'):
        graphed_step_for(SimpleNamespace(model=model, optim_wrapper=wrappers), warmup_steps=3)
    with pytest.raises(ValueError, match='has no text_inputs'):
        graphed_step_for(runner_with(torch.nn.Linear(2, 2)), warmup_steps=3)
