"""mmengine's epoch-based training loop with every step run by :class:`GraphedTrainStep`.

Select it in a training stage's runner config::

    train_cfg=dict(type='GraphedTrainLoop', max_epochs=20),
    optim_wrapper=dict(type='AmpOptimWrapper', dtype='bfloat16',
                       optimizer=dict(type='AdamW', lr=3e-4, weight_decay=0.05,
                                      fused=True, capturable=True)),

Each iteration preprocesses its batch and tokenises its texts on the host (padded to a
multiple of ``pad_to_multiple_of`` tokens, so a few shapes recur), then runs forward,
backward and the optimizer step as one replayed CUDA graph; hooks, schedulers, logging,
validation and checkpoints run as in ``EpochBasedTrainLoop``. The step bypasses the optim
wrapper's ``update_params``, so what that would add is refused up front: gradient
accumulation, gradient clipping, fp16 loss scaling, several parameter wrappers, and a
DDP-wrapped model (one process). An ``AmpOptimWrapper``'s dtype is the step's autocast
dtype. The model needs ``text_inputs`` and ``loss_on_inputs`` (BLIP's pre-training
model). Off CUDA the same steps run eagerly (``pad_to_multiple_of=None``: bit for bit
those of ``EpochBasedTrainLoop``).
"""
from typing import Optional

import torch
from mmengine.model import is_model_wrapper
from mmengine.optim import AmpOptimWrapper, OptimWrapper, OptimWrapperDict
from mmengine.runner import EpochBasedTrainLoop

from harness.core.registry import LOOPS
from .graphed_step import GraphedTrainStep


def graphed_step_for(runner, warmup_steps: int) -> GraphedTrainStep:
    """A :class:`GraphedTrainStep` of the runner's model and optimizer, or ValueError naming
    what the runner is configured with that a graphed step cannot do."""
    model, wrapper = runner.model, runner.optim_wrapper
    problems = []
    if is_model_wrapper(model):
        problems.append(f'the model is wrapped in {type(model).__name__} (several '
                        f'processes): run one process, or use EpochBasedTrainLoop')
    else:
        problems += [f'{type(model).__name__} has no {method}()'
                     for method in ('text_inputs', 'loss_on_inputs') if not hasattr(model, method)]
    if not isinstance(wrapper, OptimWrapper) or isinstance(wrapper, OptimWrapperDict):
        problems.append(f'optim_wrapper is {type(wrapper).__name__}: use one OptimWrapper')
    else:
        if wrapper._accumulative_counts != 1:
            problems.append(f'accumulative_counts={wrapper._accumulative_counts}: gradient '
                            f'accumulation is not captured; use 1')
        clip_grad = getattr(wrapper, 'clip_grad_kwargs', None)  # set only when configured
        if clip_grad:
            problems.append(f'clip_grad={clip_grad}: gradient clipping is not captured; '
                            f'remove it')
        if isinstance(wrapper, AmpOptimWrapper) and wrapper.cast_dtype != torch.bfloat16:
            problems.append(f'AmpOptimWrapper(dtype={wrapper.cast_dtype}) scales the loss on '
                            f"the host; use dtype='bfloat16'")
    if problems:
        raise ValueError('GraphedTrainLoop: ' + '; '.join(problems))
    autocast_dtype = wrapper.cast_dtype if isinstance(wrapper, AmpOptimWrapper) else None
    return GraphedTrainStep(model, wrapper.optimizer, autocast_dtype, warmup_steps)


@LOOPS.register_module()
class GraphedTrainLoop(EpochBasedTrainLoop):
    """``EpochBasedTrainLoop`` whose steps are replayed CUDA graphs (module docstring).

    Args:
        pad_to_multiple_of: round the texts' token lengths up to a multiple of this (a few
            graphs); None pads each batch to its longest text (a graph per length).
        warmup_steps: eager steps before the first capture (:class:`GraphedTrainStep`).
        The others are ``EpochBasedTrainLoop``'s.
    """

    def __init__(self, runner, dataloader, max_epochs: int, val_begin: int = 1,
                 val_interval: int = 1, dynamic_intervals=None,
                 pad_to_multiple_of: Optional[int] = 8, warmup_steps: int = 3):
        super().__init__(runner, dataloader, max_epochs, val_begin, val_interval,
                         dynamic_intervals)
        self.pad_to_multiple_of = pad_to_multiple_of
        self.warmup_steps = warmup_steps
        self.step: Optional[GraphedTrainStep] = None

    def run(self) -> torch.nn.Module:
        """Build the graphed step (refusing what it cannot do), then train."""
        self.step = graphed_step_for(self.runner, self.warmup_steps)
        return super().run()

    def run_epoch(self) -> None:
        """One epoch; the last step's deferred checks are read before the epoch's hooks
        (which may save a checkpoint)."""
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        for idx, data_batch in enumerate(self.dataloader):
            self.run_iter(idx, data_batch)
        self.step.check()
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1

    def run_iter(self, idx, data_batch) -> None:
        """One graphed step between the iteration's hooks."""
        self.runner.call_hook('before_train_iter', batch_idx=idx, data_batch=data_batch)
        outputs = self.train_step(data_batch)
        self.runner.call_hook('after_train_iter', batch_idx=idx, data_batch=data_batch,
                              outputs=outputs)
        self._iter += 1

    def train_step(self, data_batch) -> dict:
        """Preprocess and tokenise on the host, run the step, return mmengine's log vars."""
        model = self.runner.model
        data = model.data_preprocessor(data_batch, True)
        images = data['inputs']
        inputs = model.text_inputs(data['data_samples'], images.shape[0], images.device,
                                   pad_to_multiple_of=self.pad_to_multiple_of)
        _, log_vars = model.parse_losses(self.step(images, inputs))
        return log_vars
