"""Training hooks of the harness: per-epoch reseeding, BLIP's ITC alpha warm-up, stopping
on a non-finite loss, and checkpoints that a crash or a full disk cannot destroy."""
import math
import random
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from mmengine import dist
from mmengine.hooks import CheckpointHook, Hook
from mmengine.model import is_model_wrapper

from harness.checkpoint_files import ATOMIC_BACKEND, remove_stale_temp_files
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


@HOOKS.register_module()
class CompileLayersHook(Hook):
    """Compile every transformer layer before training (opt-in speed on GPUs).

    Calls the model's ``compile_layers(**options)`` (BLIP's models: each ViT block and MED
    layer compiled in place, :mod:`backbones.compiled_layers`): checkpoints are unchanged,
    floats differ by kernel fusion. ``options`` go to ``torch.compile``; with
    ``mode='reduce-overhead'`` each layer also replays as a CUDA graph, and the hook marks
    the start of every iteration for them (``torch.compiler.cudagraph_mark_step_begin``).
    BLIP-base's bf16 pre-training step on an H200 (``benchmarks.suite``'s step loop,
    ``leaderboards/performance.md``): 471 img/s eager, 442 compiled, 615 compiled with CUDA
    graphs, with the same losses as compiled. CUDA graphs are for training stages without
    validation (a runner with a ``val_cfg`` is refused). On CPUs compiling costs minutes.
    """

    def __init__(self, **options):
        self.options = options
        self.marks_steps = options.get('mode') == 'reduce-overhead'

    def before_train(self, runner) -> None:
        """Compile the layers of the (unwrapped) model."""
        model = unwrap(runner.model)
        if self.marks_steps and getattr(runner, '_val_loop', None) is not None:
            raise ValueError(
                "CompileLayersHook(mode='reduce-overhead'): this runner also validates "
                '(val_cfg), and evaluation through layers replayed as CUDA graphs is not '
                'tested here (a decoder keeps graph outputs, its key/value cache, across '
                "calls); use mode='default' in this stage, or validate in a later stage")
        if not hasattr(model, 'compile_layers'):
            raise TypeError(f'CompileLayersHook: {type(model).__name__} has no compile_layers(); '
                            f'remove the hook or give the model one')
        count = model.compile_layers(**self.options)
        runner.logger.info(f'CompileLayersHook: compiled {count} transformer layers')

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        """Under ``mode='reduce-overhead'``, start a new step for the layers' CUDA graphs (the
        last step's outputs, gradients taken, may be overwritten)."""
        if self.marks_steps:
            torch.compiler.cudagraph_mark_step_begin()


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Stop training at the first iteration whose loss (or any loss term) is NaN or infinite.

    The optimiser has already applied that iteration's update, so the weights are ruined:
    raising here, before the epoch's ``CheckpointHook`` runs, keeps the last good checkpoint
    as the newest one and publishes nothing. The check runs every iteration; it costs no
    extra device synchronisation, as mmengine's ``RuntimeInfoHook`` already reads every
    loss term to the host each iteration for logging. With several processes the verdict
    is summed over ranks (one scalar all-reduce), so every rank stops at the same iteration
    instead of the healthy ones waiting forever in the next gradient all-reduce.
    """

    priority = 'ABOVE_NORMAL'  # after RuntimeInfoHook, before logging and checkpointing

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """Raise ``FloatingPointError`` (naming run, epoch, iteration, terms) on a bad loss."""
        terms = {name: float(torch.as_tensor(value).detach())
                 for name, value in (outputs or {}).items() if 'loss' in name}
        bad = torch.tensor(float(not all(math.isfinite(v) for v in terms.values())))
        if dist.get_world_size() > 1:
            dist.all_reduce(bad, op='sum')
        if not bad.item():
            return
        values = ', '.join(f'{name}={value:.6g}' for name, value in terms.items())
        last = Path(runner.work_dir) / 'last_checkpoint'
        kept = (f'the last good checkpoint ({last.read_text().strip()}) is kept'
                if last.is_file() else 'no checkpoint was saved before it')
        raise FloatingPointError(
            f'training {runner.experiment_name!r} diverged: non-finite loss (on this or '
            f'another rank) at epoch {runner.epoch + 1}, iteration {batch_idx + 1} of the '
            f'epoch (global iteration {runner.iter + 1}): {values}. Stopped without saving '
            f'the diverged weights; '
            f'{kept}. Lower the learning rate (optim_wrapper.optimizer.lr) or clip gradients '
            f'(optim_wrapper.clip_grad=dict(max_norm=...)) and run again.')


class _RemovalsAfterSave:
    """A file backend whose ``remove``/``rmtree`` wait until :meth:`apply` (after a save)."""

    def __init__(self, backend):
        self.backend = backend
        self.pending = []

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def remove(self, path) -> None:
        """Note ``path`` for removal."""
        self.pending.append((self.backend.remove, path))

    def rmtree(self, path) -> None:
        """Note the folder ``path`` for removal."""
        self.pending.append((self.backend.rmtree, path))

    def apply(self) -> None:
        """Carry out the removals noted."""
        for remove, path in self.pending:
            remove(path)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook``, but a crash or a full disk while saving loses nothing.

    mmengine deletes the checkpoint that ``max_keep_ckpts`` (or a new best) retires before
    it writes the new one, and writes straight into the final path. Here every checkpoint
    is written to a temp file and renamed (the ``'harness_atomic_local'`` file backend), and
    the retired files are deleted only once the new one is complete; a failed save leaves
    the previous checkpoint and ``last_checkpoint`` as they were. Temp files a killed
    process left behind are deleted when training starts.
    """

    def __init__(self, *args, backend_args=None, file_client_args=None, **kwargs):
        if backend_args is None and file_client_args is None:
            backend_args = dict(backend=ATOMIC_BACKEND)
        super().__init__(*args, backend_args=backend_args, file_client_args=file_client_args,
                         **kwargs)

    def before_train(self, runner) -> None:
        """mmengine's set-up, then remove temp files of interrupted saves (main process)."""
        super().before_train(runner)
        if dist.is_main_process() and Path(self.out_dir).is_dir():
            for stale in remove_stale_temp_files(Path(self.out_dir)):
                runner.logger.info(f'removed {stale}, left by an interrupted checkpoint save')

    @contextmanager
    def _removals_after_save(self):
        """Defer the deletions mmengine makes during a save until the save has succeeded."""
        if isinstance(self.file_backend, _RemovalsAfterSave):  # a nested save
            yield
            return
        backend = self.file_backend
        self.file_backend = deferred = _RemovalsAfterSave(backend)
        try:
            yield
        finally:
            self.file_backend = backend
        deferred.apply()

    def _save_checkpoint_with_step(self, runner, step, meta):
        """Save, then delete the checkpoint ``max_keep_ckpts`` retires."""
        with self._removals_after_save():
            super()._save_checkpoint_with_step(runner, step, meta)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        """Save a new best, then delete the previous best."""
        with self._removals_after_save():
            super()._save_best_checkpoint(runner, metrics)
