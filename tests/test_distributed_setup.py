"""harness.distributed in one process: which launches join a group, what is refused, and the
DDP wrapper of a machine without CUDA (the 2-process runs are in test_distributed_*.py)."""
import pytest
import torch
import torch.distributed

from harness.distributed import CPU_MODEL_WRAPPER, cpu_model_wrapper, init_distributed


def test_a_single_process_run_joins_no_group():
    init_distributed('none', dict(backend='nccl'))
    assert not torch.distributed.is_initialized()


def test_an_unknown_launcher_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="'pytorch'"):
        init_distributed('torchrun')


def test_nccl_without_cuda_is_refused_naming_the_gloo_option(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(ValueError, match='env_cfg.dist_cfg.backend=gloo'):
        init_distributed('pytorch', dict(backend='nccl'))
    assert not torch.distributed.is_initialized()


def test_only_multi_process_runs_without_cuda_get_the_cpu_ddp_wrapper(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert CPU_MODEL_WRAPPER['device_ids'] is None
    assert cpu_model_wrapper(dict(launcher='pytorch', find_unused_parameters=True)) == \
        dict(CPU_MODEL_WRAPPER, find_unused_parameters=True)
    assert cpu_model_wrapper(dict(launcher='none')) is None
    assert cpu_model_wrapper(dict(launcher='pytorch', model_wrapper_cfg=dict(
        type='MMFullyShardedDataParallel'))) is None  # a config's own wrapper is kept
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    assert cpu_model_wrapper(dict(launcher='pytorch')) is None
