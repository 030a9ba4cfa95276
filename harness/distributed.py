"""The process group of a multi-process run (``--launcher pytorch|slurm|mpi``), joined early.

mmengine's Runner joins the launcher's process group when it is built, which in an
experiment is the first training stage: until then ``mmengine.dist.barrier()`` waits for
nobody, and rank-0 file work (clearing a re-run stage's folder, the manifest) races the
other ranks. The experiment runner therefore joins it before any stage runs; a Runner built
later finds it joined and keeps it.

mmengine's ``init_dist('pytorch')`` pins a CUDA device first, which fails on a machine
without one; there the group is joined directly (``env://``: ``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``, ``MASTER_PORT`` from ``torchrun``), and DDP wraps the model without CUDA
device ids (:data:`CPU_MODEL_WRAPPER`), so ``torchrun ... --launcher pytorch`` with
``env_cfg.dist_cfg.backend='gloo'`` trains on CPUs as it does on GPUs.
"""
import datetime
from typing import Optional

import torch
import torch.distributed
from mmengine.dist import init_dist, is_distributed

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')
# mmengine's DDP settings without ``device_ids``, which a model on the CPU must not get.
CPU_MODEL_WRAPPER = dict(type='MMDistributedDataParallel', device_ids=None,
                         broadcast_buffers=False)


def init_distributed(launcher: str, dist_cfg: Optional[dict] = None) -> None:
    """Join the process group ``launcher`` started (once; nothing for ``'none'``).

    ``dist_cfg`` is the config's ``env_cfg.dist_cfg`` (``backend``, ``timeout`` in
    seconds...), as mmengine's Runner reads it.
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f'launcher {launcher!r}: choose one of {LAUNCHERS}')
    if launcher == 'none' or is_distributed():
        return
    dist_cfg = dict(dist_cfg or {})
    if launcher != 'pytorch' or torch.cuda.is_available():
        init_dist(launcher, **dist_cfg)
        return
    backend = dist_cfg.pop('backend', 'gloo')
    if backend != 'gloo':
        raise ValueError(f'--launcher pytorch on a machine without CUDA needs the gloo backend, '
                         f'but env_cfg.dist_cfg.backend is {backend!r}; pass --cfg-options '
                         f'env_cfg.dist_cfg.backend=gloo')
    if dist_cfg.get('timeout') is not None:
        dist_cfg['timeout'] = datetime.timedelta(seconds=dist_cfg['timeout'])
    torch.distributed.init_process_group(backend, **dist_cfg)


def cpu_model_wrapper(cfg: dict) -> Optional[dict]:
    """The ``model_wrapper_cfg`` a multi-process runner config without CUDA needs
    (:data:`CPU_MODEL_WRAPPER`: mmengine's default hands DDP a CUDA device id); None when
    the config sets its own, runs in one process or has CUDA."""
    if cfg.get('model_wrapper_cfg') is not None or cfg.get('launcher', 'none') == 'none' \
            or torch.cuda.is_available():
        return None
    return dict(CPU_MODEL_WRAPPER,
                find_unused_parameters=cfg.get('find_unused_parameters', False))


def leave_distributed() -> None:
    """Leave the process group a multi-process run joined (NCCL warns at exit otherwise)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
