"""Linear layers' weight gradients on a two-thread CPU, with MKL's two-thread bits, at one
thread.

A linear layer's weight gradient, ``grad^T @ input``, sums over the batch's rows. At two
threads MKL splits those rows between the threads (each sums its range, in chunks of up to
384 rows) and adds the two partial products, so the result has other bits than one thread's
sum. When both threads share one core, as in each child of the CPU main job
(``harness/variant_jobs.py``), each of the product's synchronisation points waits, polling,
until the other thread gets the core, and these products take about twice as long as at one
thread (``python -m benchmarks.bench_cpu_threads``).

:class:`OneThreadWeightGradientLinear` gets the same bits at one thread. For each product
shape a :class:`SplitPlan` (where the rows split, the chunk size) is looked for once among
the splits MKL was seen to make, by comparing the plan's one-thread partial products with
MKL's own two-thread product of random operands of that shape; the gradient is then computed
by the plan. A shape no plan matches keeps MKL's product, as do GPU tensors, other dtypes,
operands not laid out as the plans were checked, and processes not running two threads:
every gradient has the bits ``F.linear`` and autograd would give
(``tests/test_one_thread_weight_gradients.py``). :class:`OneThreadWeightGradientsHook`,
which every training runner has, converts a model's linear layers.
"""
from contextlib import contextmanager
from typing import Dict, Iterator, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from torch import nn

from harness.core.registry import HOOKS

CHUNK_ROWS = 384  # rows MKL sums at a time within a thread's range (a K-blocking)
OTHER_SPLIT_ROWS = 768  # where MKL splits a few shapes instead of halfway
ALIGNMENT_BYTES = 64  # of a new CPU tensor's data, as the plans' random operands have
PLANNED_THREADS = 2  # the thread count whose products the plans reproduce


class SplitPlan(NamedTuple):
    """How MKL sums a weight gradient's rows: the first thread's range ends at ``split``
    (the row count: no split), each range summed in ``chunk``-row products (None: one)."""

    split: int
    chunk: Optional[int]


# (output features, input features, rows, threads) -> the matching plan, or None
_plans: Dict[Tuple[int, int, int, int], Optional[SplitPlan]] = {}


@contextmanager
def one_thread() -> Iterator[None]:
    """Within the block, this thread's CPU operators and MKL calls use one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def candidate_plans(rows: int) -> Iterator[SplitPlan]:
    """The plans tried for ``rows`` rows, in order: no split, then halves and the
    768-row split, each with the ranges summed whole or in 384-row chunks."""
    yield SplitPlan(rows, None)
    for split in dict.fromkeys((rows // 2, OTHER_SPLIT_ROWS)):
        if 0 < split < rows:
            for chunk in (None, CHUNK_ROWS):
                yield SplitPlan(split, chunk)


def range_product(grad: torch.Tensor, inputs: torch.Tensor, start: int, stop: int,
                  chunk: Optional[int]) -> torch.Tensor:
    """``grad[start:stop]^T @ inputs[start:stop]``, summed in ``chunk``-row products."""
    step = chunk or stop - start
    total = None
    for begin in range(start, stop, step):
        end = min(stop, begin + step)
        product = grad[begin:end].t().mm(inputs[begin:end])
        total = product if total is None else total + product
    return total


def planned_product(grad: torch.Tensor, inputs: torch.Tensor, plan: SplitPlan) -> torch.Tensor:
    """``grad^T @ inputs`` summed as ``plan`` says, at one thread."""
    rows = grad.shape[0]
    with one_thread():
        first = range_product(grad, inputs, 0, plan.split, plan.chunk)
        if plan.split == rows:
            return first
        return first + range_product(grad, inputs, plan.split, rows, plan.chunk)


def find_plan(outputs: int, inputs: int, rows: int) -> Optional[SplitPlan]:
    """The plan that gives MKL's bits for ``[rows, outputs]^T @ [rows, inputs]`` at this
    process's thread count (checked on random operands, kept per shape); None if none does."""
    key = (outputs, inputs, rows, torch.get_num_threads())
    if key not in _plans:
        generator = torch.Generator().manual_seed(0)
        grad = torch.randn(rows, outputs, generator=generator)
        features = torch.randn(rows, inputs, generator=generator)
        expected = grad.t().mm(features)
        _plans[key] = next((plan for plan in candidate_plans(rows)
                            if torch.equal(planned_product(grad, features, plan), expected)),
                           None)
    return _plans[key]


def laid_out_as_checked(matrix: torch.Tensor) -> bool:
    """Whether ``matrix`` is laid out as :func:`find_plan`'s operands: contiguous, starting
    on a 64-byte boundary as a new CPU tensor does."""
    return matrix.is_contiguous() and matrix.data_ptr() % ALIGNMENT_BYTES == 0


def weight_gradient(grad: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """``grad^T @ inputs`` (2-D, rows first) with the bits MKL gives at this process's
    thread count, by a one-thread plan where one matches (two threads: the splits MKL was
    seen to make are two-way)."""
    plan = None
    if (grad.device.type == 'cpu' and grad.dtype == inputs.dtype == torch.float32 and
            torch.get_num_threads() == PLANNED_THREADS and laid_out_as_checked(grad) and
            laid_out_as_checked(inputs)):
        plan = find_plan(grad.shape[1], inputs.shape[1], grad.shape[0])
    return grad.t().mm(inputs) if plan is None else planned_product(grad, inputs, plan)


class _PlannedLinear(torch.autograd.Function):
    """``F.linear`` whose backward computes what autograd would (``AddmmBackward0``/
    ``MmBackward0`` after flattening), the weight gradient by :func:`weight_gradient`."""

    @staticmethod
    def forward(ctx, inputs, weight, bias):
        ctx.save_for_backward(inputs, weight)
        ctx.bias_shape = None if bias is None else bias.shape
        return F.linear(inputs, weight, bias)

    @staticmethod
    def backward(ctx, grad):
        inputs, weight = ctx.saved_tensors
        grad_rows = grad.reshape(-1, grad.shape[-1])
        input_rows = inputs.reshape(-1, inputs.shape[-1])
        needs = ctx.needs_input_grad
        return (grad_rows.mm(weight).view(inputs.shape) if needs[0] else None,
                weight_gradient(grad_rows, input_rows) if needs[1] else None,
                grad_rows.sum_to_size(ctx.bias_shape) if needs[2] else None)


class OneThreadWeightGradientLinear(nn.Linear):
    """``nn.Linear`` whose weight gradient on a two-thread CPU is computed at one thread with
    the two-thread bits (see the module docstring); elsewhere ``nn.Linear``."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """``F.linear``; through the planned backward when training on the CPU in float32
        (no autocast) with inputs ``F.linear`` flattens into one product: contiguous, at
        least 2-D, more than one feature (one would look column-major to autograd)."""
        if (torch.is_grad_enabled() and self.weight.requires_grad and
                inputs.device.type == 'cpu' and inputs.dtype == torch.float32 and
                not torch.is_autocast_enabled('cpu') and inputs.dim() >= 2 and
                inputs.is_contiguous() and self.weight.is_contiguous() and
                inputs.shape[-1] > 1):
            return _PlannedLinear.apply(inputs, self.weight, self.bias)
        return F.linear(inputs, self.weight, self.bias)


def use_one_thread_weight_gradients(model: nn.Module) -> int:
    """Turns every plain ``nn.Linear`` of ``model`` into an
    :class:`OneThreadWeightGradientLinear` in place (same parameters and state dict);
    returns how many."""
    layers = [module for module in model.modules() if type(module) is nn.Linear]
    for layer in layers:
        layer.__class__ = OneThreadWeightGradientLinear
    return len(layers)


@HOOKS.register_module()
class OneThreadWeightGradientsHook(Hook):
    """Before training on a CPU at two threads, turn the model's linear layers into
    :class:`OneThreadWeightGradientLinear` (the same bits, less time where a process's threads
    share a core). ``harness.runner_builder`` gives every training runner one."""

    def before_train(self, runner) -> None:
        """Convert the (unwrapped) model's ``nn.Linear`` layers if it trains on the CPU."""
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        on_cpu = all(parameter.device.type == 'cpu' for parameter in model.parameters())
        if on_cpu and torch.get_num_threads() == PLANNED_THREADS:
            count = use_one_thread_weight_gradients(model)
            runner.logger.info(f'OneThreadWeightGradientsHook: {count} linear layers')
