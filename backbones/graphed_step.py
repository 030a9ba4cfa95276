"""A whole training step (forward, backward, optimizer) captured once as a CUDA graph.

A BLIP-base pre-training step at batch 64 launches its kernels from the host more slowly
than an H200 runs them (``benchmarks.profile_train_step``), and compiled layers replayed as
graphs (``compile_layers(mode='reduce-overhead')``) still leave the code between the layers
(hard negatives, queues, momentum encoders, losses, the optimizer) to the host. Captured
whole, a step is one graph launch. What a capture needs, and :class:`GraphedTrainStep`
checks or arranges:

* fixed shapes: one graph is captured per input shape, so batches should come in few
  (the model's ``text_inputs(..., padding='max_length')`` as BLIP pads its pre-training
  texts: one; ``pad_to_multiple_of=8``: a few);
* no host reads inside the step: the hard-negative checks are deferred
  (``model.deferred_checks``) and read when the next step starts or at :meth:`check`;
* Python numbers read during the capture stay in the graph. The learning rates and the
  model's ``alpha_scale`` (BLIP's ITC distillation ramp) are the exceptions: the graphs read
  them from device tensors that every call sets from the parameter groups and the model,
  so schedulers and ``AlphaWarmupHook`` work as usual. The optimizer's other scalar
  hyper-parameters are compared with the captured ones at every step and a change is
  refused;
* an optimizer built with ``capturable=True`` (fused AdamW included).

Off CUDA, and for the warm-up steps before the capture, the same step runs eagerly.
"""
from typing import Dict, List, Optional

import torch
from torch import nn

from .blip_losses import raise_for_negative_weights
from .side_stream import on_side_stream


def optimizer_scalars(optimizer: torch.optim.Optimizer) -> List[dict]:
    """Each parameter group's hyper-parameters that are Python values (a capture bakes them
    in), without its parameters and learning rate (the graphs read that from a tensor)."""
    return [{name: value for name, value in group.items()
             if name not in ('params', 'lr') and not torch.is_tensor(value)}
            for group in optimizer.param_groups]


class CapturedTrainStep:
    """One captured graph with its static inputs, losses and hard-negative check flags."""

    def __init__(self, images: torch.Tensor, inputs: Dict[str, torch.Tensor]):
        self.graph = torch.cuda.CUDAGraph()
        self.images = images.clone()
        self.inputs = {name: value.clone() for name, value in inputs.items()}
        self.losses: Dict[str, torch.Tensor] = {}
        self.checks: List[torch.Tensor] = []

    def load(self, images: torch.Tensor, inputs: Dict[str, torch.Tensor]) -> None:
        """Copy a batch of the captured shapes into the graph's inputs."""
        self.images.copy_(images)
        for name, value in inputs.items():
            self.inputs[name].copy_(value)


def input_signature(images: torch.Tensor, inputs: Dict[str, torch.Tensor]) -> tuple:
    """What a captured graph is specific to: every input's name, shape and dtype."""
    return tuple((name, tuple(value.shape), value.dtype)
                 for name, value in (('images', images), *sorted(inputs.items())))


class GraphedTrainStep:
    """``step(images, inputs)`` trains ``model`` one step on ``images`` and ``inputs`` (the
    tensors of ``model.text_inputs``) and returns its detached losses.

    On CUDA the first ``warmup_steps`` calls run eagerly on a side stream (the optimizer's
    state and the libraries' workspaces come into being there), and so does the first call
    of every new input shape (compiled layers compile for it there); the next call of that
    shape captures the step as a graph, and every call of it from then on copies its batch
    into the graph's inputs and replays it. Graphs of several shapes (texts padded to a
    multiple of 8, say) share one memory pool: each replay's outputs are read before the
    next one runs. ``autocast_dtype`` (e.g. ``torch.bfloat16``) runs the losses under
    autocast. Parameters' ``.grad`` live inside the graphs: read the losses, not them.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                 autocast_dtype: Optional[torch.dtype] = None, warmup_steps: int = 3):
        self.model = model
        self.optimizer = optimizer
        self.autocast_dtype = autocast_dtype
        self.warmup_steps = warmup_steps
        self.eager_steps = 0
        self.warmed_signatures: set = set()
        self.captured: Dict[tuple, CapturedTrainStep] = {}
        self.captured_scalars: Optional[List[dict]] = None
        self.learning_rates: List[torch.Tensor] = []  # one per group, read by the graphs
        self.alpha_scale: Optional[torch.Tensor] = None  # the model's, read by the graphs
        self.unread: Optional[CapturedTrainStep] = None

    def __call__(self, images: torch.Tensor, inputs: Dict[str, torch.Tensor]
                 ) -> Dict[str, torch.Tensor]:
        if images.device.type != 'cuda':
            return self._detached(self._run(images, inputs))
        self.check()
        scalars = optimizer_scalars(self.optimizer)
        if self.captured_scalars is not None and scalars != self.captured_scalars:
            raise ValueError('GraphedTrainStep: a value the captured steps read as a Python '
                             f'number has changed (captured {self.captured_scalars}, now '
                             f'{scalars}); the graphs would keep the old one. Only '
                             'the learning rates and alpha_scale may change between steps: '
                             'keep the other optimizer settings fixed')
        signature = input_signature(images, inputs)
        step = self.captured.get(signature)
        if step is None and (self.eager_steps < self.warmup_steps
                             or signature not in self.warmed_signatures):
            self.eager_steps += 1
            self.warmed_signatures.add(signature)
            return self._detached(on_side_stream(lambda: self._run(images, inputs),
                                                 images.device))
        if step is None:
            step = self.captured[signature] = self._capture(images, inputs)
        else:
            step.load(images, inputs)
        for group, rate in zip(self.optimizer.param_groups, self.learning_rates):
            rate.fill_(group['lr'])
        if self.alpha_scale is not None:
            self.alpha_scale.fill_(float(self.model.alpha_scale))
        step.graph.replay()
        self.unread = step
        return self._detached(step.losses)

    def check(self) -> None:
        """Raise if the last replayed step's hard-negative checks failed (reads the device
        once; the next call does it anyway)."""
        if self.unread is not None:
            checks, self.unread = self.unread.checks, None
            for problems in checks:
                raise_for_negative_weights(problems)

    # ---------------------------------------------------------------- internals
    def _run(self, images: torch.Tensor, inputs: Dict[str, torch.Tensor]
             ) -> Dict[str, torch.Tensor]:
        self.optimizer.zero_grad(set_to_none=True)
        # cache_enabled=False: autocast's cast-weight cache would hold tensors of the capture.
        with torch.autocast(images.device.type, dtype=self.autocast_dtype or torch.bfloat16,
                            enabled=self.autocast_dtype is not None, cache_enabled=False):
            losses = self.model.loss_on_inputs(images, inputs)
        sum(losses.values()).backward()
        self.optimizer.step()
        return losses

    def _capture(self, images, inputs) -> CapturedTrainStep:
        uncapturable = [index for index, group in enumerate(self.optimizer.param_groups)
                        if not group.get('capturable', False)]
        if uncapturable:
            raise ValueError(f'GraphedTrainStep: parameter groups {uncapturable} of '
                             f'{type(self.optimizer).__name__} are not capturable; build the '
                             'optimizer with capturable=True (e.g. torch.optim.AdamW(..., '
                             'fused=True, capturable=True))')
        step = CapturedTrainStep(images, inputs)
        pool = next(iter(self.captured.values())).graph.pool() if self.captured else None
        if not self.learning_rates:
            self.learning_rates = [torch.tensor(float(group['lr']), device=images.device)
                                   for group in self.optimizer.param_groups]
        alpha_scale = getattr(self.model, 'alpha_scale', None)
        if alpha_scale is not None and self.alpha_scale is None:
            self.alpha_scale = torch.tensor(float(alpha_scale), device=images.device)
        floats = [group['lr'] for group in self.optimizer.param_groups]
        self.model.deferred_checks = step.checks
        try:
            for group, rate in zip(self.optimizer.param_groups, self.learning_rates):
                group['lr'] = rate
            if alpha_scale is not None:
                self.model.alpha_scale = self.alpha_scale
            with torch.cuda.graph(step.graph, pool=pool):
                step.losses = self._run(step.images, step.inputs)
        finally:
            self.model.deferred_checks = None
            for group, value in zip(self.optimizer.param_groups, floats):
                group['lr'] = value
            if alpha_scale is not None:
                self.model.alpha_scale = alpha_scale
        self.captured_scalars = optimizer_scalars(self.optimizer)
        return step

    @staticmethod
    def _detached(losses: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        return {name: value.detach().clone() for name, value in losses.items()}
