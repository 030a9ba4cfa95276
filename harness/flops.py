"""FLOP and parameter counting for results records.

FLOPs follow fvcore's convention: **one fused multiply-add counts as one flop** (so the
numbers are MACs; multiply by two for "hardware" FLOPs). fvcore has no handle for
``aten::scaled_dot_product_attention`` (``F.scaled_dot_product_attention``) nor for
``aten::_native_multi_head_attention`` (the fused kernel ``nn.MultiheadAttention`` runs in
eval mode without grad) and skips them, which hides the attention cost, and for the fused
kernel the projections too; ``count_flops`` registers a handle for each.
"""
import functools
from math import prod
from typing import Any, Callable, Sequence

import torch
from fvcore.nn import FlopCountAnalysis
from fvcore.nn.jit_handles import get_shape
from torch import nn

SDPA_OP = 'aten::scaled_dot_product_attention'
NATIVE_MHA_OP = 'aten::_native_multi_head_attention'


def sdpa_flop_handle(inputs: list, outputs: list) -> int:
    """fvcore op handle: flops of ``softmax(q @ k^T) @ v`` in one SDPA call.

    Counts the two matmuls only, ``L*S*E`` for ``q @ k^T`` and ``L*S*Ev`` for
    ``attn @ v`` per batch-and-head, as multiply-adds. Softmax, scaling and masking are
    not counted (fvcore does not count element-wise ops either); a causal mask is not
    discounted, the product is counted dense as the kernel's FLOP-equivalent.
    """
    query_shape, key_shape, value_shape = (get_shape(v) for v in inputs[:3])
    *batch_dims, query_len, head_dim = query_shape
    key_len = key_shape[-2]
    value_dim = value_shape[-1]
    return prod(batch_dims) * query_len * key_len * (head_dim + value_dim)


def native_mha_flop_handle(inputs: list, outputs: list) -> int:
    """fvcore op handle: flops of one fused ``nn.MultiheadAttention`` call.

    The op's inputs are ``(query, key, value, embed_dim, num_heads, qkv_weight, ...)`` with
    query ``(B, L, E)`` and key/value ``(B, S, E)``. Counted as multiply-adds: the q/k/v
    input projections ``B*(L + 2*S)*E*E``, the two attention matmuls ``2*B*L*S*E``
    (``q @ k^T`` and ``attn @ v`` summed over heads) and the output projection
    ``B*L*E*E``. Biases, softmax and masking are not counted, as fvcore's linear and SDPA
    counts do not count them.
    """
    *batch_dims, query_len, embed_dim = get_shape(inputs[0])
    key_len = get_shape(inputs[1])[-2]
    batch = prod(batch_dims)
    projections = batch * (query_len + 2 * key_len) * embed_dim * embed_dim
    attention = 2 * batch * query_len * key_len * embed_dim
    output = batch * query_len * embed_dim * embed_dim
    return projections + attention + output


def _modules_reached_by(function: Callable[..., Any]) -> list[nn.Module]:
    """Modules a function calls through: a bound method's owner, partial arguments and
    closure cells (searched one level deep)."""
    candidates = [getattr(function, '__self__', None)]
    if isinstance(function, functools.partial):
        candidates += [function.func, *function.args, *function.keywords.values()]
        candidates += [getattr(function.func, '__self__', None)]
    candidates += [cell.cell_contents for cell in getattr(function, '__closure__', None) or ()]
    return [candidate for candidate in candidates if isinstance(candidate, nn.Module)]


class _CallableAsModule(nn.Module):
    """Wraps a plain function so fvcore (which traces ``nn.Module``s only) can trace it.

    The modules the function reaches are registered as children, so their weights are
    parameters of the traced module rather than constants (which tracing refuses).
    """

    def __init__(self, function: Callable[..., Any]):
        super().__init__()
        self.function = function
        self.reached = nn.ModuleList(_modules_reached_by(function))

    def forward(self, *args: Any) -> Any:
        """Calls the wrapped function."""
        return self.function(*args)


def _analyse(model: nn.Module | Callable[..., Any],
             inputs: torch.Tensor | Sequence[torch.Tensor]) -> FlopCountAnalysis:
    """fvcore's analysis of one call ``model(*inputs)`` with our attention handles, traced
    without grad (as inference runs, so ``nn.MultiheadAttention`` takes its fused path)."""
    module = model if isinstance(model, nn.Module) else _CallableAsModule(model)
    inputs = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
    analysis = FlopCountAnalysis(module, inputs)
    analysis.set_op_handle(SDPA_OP, sdpa_flop_handle, NATIVE_MHA_OP, native_mha_flop_handle)
    analysis.uncalled_modules_warnings(False)
    analysis.unsupported_ops_warnings(False)
    try:
        with torch.no_grad():
            analysis.total()  # traces once; later queries reuse the cached statistics
    except RuntimeError as error:
        if 'requires grad as a constant' not in str(error):
            raise
        raise RuntimeError(
            'count_flops: the function uses module weights it does not reach through a '
            'bound method, functools.partial or closure; pass the nn.Module itself, or a '
            'lambda/partial that closes over the module') from error
    return analysis


def count_flops(model: nn.Module | Callable[..., Any],
                inputs: torch.Tensor | Sequence[torch.Tensor]) -> float:
    """Total flops (multiply-adds counted once) of one call ``model(*inputs)``.

    Args:
        model: a module, or a function of tensors that reaches its modules through a
            bound method, ``functools.partial`` or closure (e.g.
            ``lambda x: blip(x, mode='tensor')``).
        inputs: one tensor or a tuple of positional tensor arguments.

    Returns:
        Flops for the whole call, not per sample: divide by the batch size and 1e9 for
        the per-image GFLOPs of a results record.
    """
    return float(_analyse(model, inputs).total())


def skipped_ops(model: nn.Module | Callable[..., Any],
                inputs: torch.Tensor | Sequence[torch.Tensor]) -> dict[str, int]:
    """Ops of one call that fvcore has no handle for and counts as zero, with how often
    each ran (e.g. ``{'aten::add': 25, 'aten::gelu': 12}``): check that only element-wise
    ops, which the multiply-add convention leaves out anyway, are among them."""
    return dict(_analyse(model, inputs).unsupported_ops())


def count_parameters(module: nn.Module) -> int:
    """Number of parameter elements, each shared or tied parameter counted once."""
    return sum(parameter.numel() for parameter in module.parameters())
