"""Training hooks of the harness: per-epoch reseeding and BLIP's ITC alpha warm-up."""
import random

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from harness.core.registry import HOOKS


def unwrap(model):
    """The model inside a DDP/FSDP wrapper (or the model itself)."""
    return model.module if is_model_wrapper(model) else model


@HOOKS.register_module()
class EpochSeedHook(Hook):
    """Reseed python, numpy and torch at every epoch start from ``(seed, epoch, rank)``.

    mmengine's ``--resume`` restores weights, optimiser and schedulers but not the RNG
    streams, so augmentation, ITM negative sampling and dropout after a resume would
    differ from an uninterrupted run. Seeding per epoch makes both identical.
    """

    priority = 'VERY_HIGH'

    def before_train_epoch(self, runner) -> None:
        """Seed every generator for this epoch (from the runner's seed)."""
        epoch_seed = (runner.seed * 1_000_003 + runner.epoch * 7919 + runner.rank) % (2 ** 31)
        random.seed(epoch_seed)
        np.random.seed(epoch_seed)
        torch.manual_seed(epoch_seed)


@HOOKS.register_module()
class AlphaWarmupHook(Hook):
    """Ramp ITC's distillation weight from 0 to ``alpha`` linearly over the first iterations.

    The factor at global iteration ``t`` is ``min(1, t / (warmup_epochs * len(loader)))``,
    set on the model's ``alpha_scale``. BLIP ramps over 2 epochs in pre-training
    (pretrain.py: ``min(1, (epoch * len + i) / (2 * len))``) and over epoch 0 only in
    retrieval fine-tuning (train_retrieval.py: ``min(1, i / len)``, then 1): configs set
    ``warmup_epochs=2`` and ``1`` for those stages.
    """

    def __init__(self, warmup_epochs: float = 1.0):
        self.warmup_epochs = warmup_epochs

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        """Set the model's alpha scale for this iteration."""
        ramp_iters = self.warmup_epochs * len(runner.train_dataloader)
        scale = 1.0 if ramp_iters <= 0 else min(1.0, runner.iter / ramp_iters)
        unwrap(runner.model).alpha_scale = scale
