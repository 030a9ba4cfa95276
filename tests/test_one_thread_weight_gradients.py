"""backbones.one_thread_weight_gradients: the same gradients as F.linear and autograd."""
import copy

import pytest
import torch
from torch import nn

from backbones import one_thread_weight_gradients as planned
from harness.core.registry import HOOKS


@pytest.fixture
def two_threads():
    """Two CPU threads within the test (MKL splits weight gradients there)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def gradients(layer: nn.Module, inputs: torch.Tensor, seed: int = 0):
    """Gradients of a random projection of ``layer(inputs)`` w.r.t. inputs and parameters."""
    inputs = inputs.clone().requires_grad_(True)
    output = layer(inputs)
    weights = torch.randn(output.shape, generator=torch.Generator().manual_seed(seed))
    (output * weights).sum().backward()
    return [inputs.grad] + [parameter.grad for parameter in layer.parameters()]


@pytest.mark.parametrize('shape, features, bias', [
    ((32, 30, 128), (128, 128), True),   # 960 rows: split halfway, whole ranges
    ((32, 30, 128), (128, 512), True),   # 960 rows: split at 768
    ((96, 30, 512), (512, 128), True),   # 2880 rows: halves in 384-row chunks
    ((32, 65, 96), (96, 288), True),     # 2080 rows
    ((32, 29, 128), (128, 291), False),  # an LM head without bias, 928 rows
    ((20, 128), (128, 64), True),        # few rows: no split
])
def test_converted_layer_has_autograds_bits(two_threads, shape, features, bias):
    torch.manual_seed(0)
    layer = nn.Linear(*features, bias=bias)
    converted = copy.deepcopy(layer)
    assert planned.use_one_thread_weight_gradients(converted) == 1
    assert type(converted) is planned.OneThreadWeightGradientLinear
    inputs = torch.randn(shape)
    for expected, actual in zip(gradients(layer, inputs), gradients(converted, inputs)):
        assert torch.equal(expected, actual)
    assert torch.equal(layer(inputs), converted(inputs))
    assert converted.state_dict().keys() == layer.state_dict().keys()


def test_layers_not_converted_keep_their_path(two_threads):
    torch.manual_seed(0)
    layer = nn.Linear(128, 64)
    converted = copy.deepcopy(layer)
    planned.use_one_thread_weight_gradients(converted)
    # a non-contiguous input (F.linear takes another path), and a frozen weight
    hidden = torch.randn(16, 30, 128)
    for inputs in (hidden[:, 0], hidden.transpose(0, 1)):
        for expected, actual in zip(gradients(layer, inputs), gradients(converted, inputs)):
            assert torch.equal(expected, actual)
    with torch.autocast('cpu', dtype=torch.bfloat16):  # autocast's own path
        assert converted(hidden).grad_fn.name() != '_PlannedLinearBackward'
    assert converted(hidden).grad_fn.name() == '_PlannedLinearBackward'
    converted.weight.requires_grad_(False)
    inputs = torch.randn(4, 128, requires_grad=True)
    assert converted(inputs).grad_fn.name() == 'AddmmBackward0'


def test_plans_match_mkl_or_are_not_used(two_threads):
    generator = torch.Generator().manual_seed(1)
    for rows in (100, 960, 1000, 2880):
        grad = torch.randn(rows, 128, generator=generator)
        inputs = torch.randn(rows, 96, generator=generator)
        assert torch.equal(planned.weight_gradient(grad, inputs), grad.t().mm(inputs))
        plan = planned.find_plan(128, 96, rows)
        if plan is not None:  # a plan is only ever the one that gave MKL's bits
            assert torch.equal(planned.planned_product(grad, inputs, plan), grad.t().mm(inputs))
    # a matrix starting off the 64-byte boundary the plans were checked at keeps MKL's product
    assert not planned.laid_out_as_checked(torch.randn(960 * 128 + 1)[1:].view(960, 128))
    assert planned.laid_out_as_checked(torch.randn(960, 128))


def test_candidate_plans_end_with_the_split_forms_mkl_uses():
    assert list(planned.candidate_plans(960)) == [
        planned.SplitPlan(960, None), planned.SplitPlan(480, None), planned.SplitPlan(480, 384),
        planned.SplitPlan(768, None), planned.SplitPlan(768, 384)]
    assert list(planned.candidate_plans(500)) == [
        planned.SplitPlan(500, None), planned.SplitPlan(250, None), planned.SplitPlan(250, 384)]


def test_range_product_sums_chunks_in_order():
    grad, inputs = torch.randn(10, 3), torch.randn(10, 2)
    chunks = grad[:4].t().mm(inputs[:4]) + grad[4:8].t().mm(inputs[4:8]) + \
        grad[8:].t().mm(inputs[8:])
    assert torch.equal(planned.range_product(grad, inputs, 0, 10, 4), chunks)
    assert torch.equal(planned.range_product(grad, inputs, 2, 10, None),
                       grad[2:].t().mm(inputs[2:]))


def test_one_thread_restores_the_thread_count(two_threads):
    with planned.one_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_hook_converts_linear_layers_of_a_cpu_model(two_threads):
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))

    class Runner:
        logger = type('Logger', (), {'info': staticmethod(lambda message: None)})()

    Runner.model = model
    HOOKS.build(dict(type='OneThreadWeightGradientsHook')).before_train(Runner())
    assert [type(m).__name__ for m in model] == [
        'OneThreadWeightGradientLinear', 'ReLU', 'OneThreadWeightGradientLinear']
    torch.set_num_threads(1)
    single = nn.Sequential(nn.Linear(4, 4))
    Runner.model = single
    HOOKS.build(dict(type='OneThreadWeightGradientsHook')).before_train(Runner())
    assert type(single[0]) is nn.Linear  # one thread: nothing to gain, nothing converted
