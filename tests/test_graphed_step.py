"""A training step captured whole as a CUDA graph (``backbones.graphed_step``) and the pieces
it needs: texts as tensors before the step, fixed padding, hard-negative checks read later."""
import copy

import pytest
import torch

from backbones.blip_losses import (draw_negatives, negative_weight_problems,
                                   raise_for_negative_weights)
from backbones.graphed_step import GraphedTrainStep, optimizer_scalars
from test_model import NO_DROPOUT, build

TEXTS = ['a red circle', 'a blue square left of a star', 'two green triangles', 'a cat']
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason='CUDA graphs need a GPU')
DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])


def test_loss_is_the_loss_on_its_text_inputs_and_fixed_padding_keeps_the_losses():
    torch.manual_seed(0)
    model = build(prompt='a picture of ', text_overrides=NO_DROPOUT)
    images = torch.randn(4, 3, 32, 32)
    start = copy.deepcopy(model.state_dict())  # a loss updates the queue and momentum encoders

    def seeded(compute):
        model.load_state_dict(start)
        torch.manual_seed(3)
        return compute()

    longest = model.text_inputs(dict(text=TEXTS), 4, images.device)
    padded = model.text_inputs(dict(text=TEXTS), 4, images.device, padding='max_length')
    assert padded['input_ids'].shape[1] == padded['caption_input_ids'].shape[1] == 30
    assert longest['input_ids'].shape[1] < 30
    assert set(padded) == {'input_ids', 'attention_mask', 'image_ids', 'caption_input_ids',
                           'caption_attention_mask', 'caption_labels'}
    losses = seeded(lambda: model.loss(images, dict(text=TEXTS)))
    on_inputs = seeded(lambda: model.loss_on_inputs(images, longest))
    on_padded = seeded(lambda: model.loss_on_inputs(images, padded))
    assert losses.keys() == on_inputs.keys() == on_padded.keys()
    for name in losses:
        assert torch.equal(losses[name], on_inputs[name]), name
        # Padding is masked out of attention and of the LM labels: only rounding differs.
        torch.testing.assert_close(on_padded[name], on_inputs[name], rtol=0, atol=2e-5)


def test_padding_to_a_multiple_appends_pad_tokens_up_to_max_length():
    model = build()
    texts = ['a red circle', 'two green triangles left of a blue star']
    longest = model.tokenize(texts)
    rounded = model.tokenize(texts, pad_to_multiple_of=8)
    length = longest['input_ids'].shape[1]
    assert length % 8 and rounded['input_ids'].shape[1] == -(-length // 8) * 8
    assert torch.equal(rounded['input_ids'][:, :length], longest['input_ids'])
    assert (rounded['input_ids'][:, length:] == model.tokenizer.pad_token_id).all()
    assert torch.equal(rounded['attention_mask'].sum(1), longest['attention_mask'].sum(1))
    capped = model.tokenize(['word ' * 40], pad_to_multiple_of=8)
    assert capped['input_ids'].shape[1] == model.max_text_length == 30


def test_deferred_checks_keep_the_draws_and_raise_the_same_errors_later():
    torch.manual_seed(0)
    weights = torch.rand(2, 5, 5)
    torch.manual_seed(1)
    drawn = draw_negatives(*weights)
    checks = []
    torch.manual_seed(1)
    deferred = draw_negatives(*weights, deferred_checks=checks)
    assert all(torch.equal(a, b) for a, b in zip(drawn, deferred))
    assert len(checks) == 1 and checks[0].tolist() == [False, False]

    broken = weights.clone()
    broken[0, 1, 2] = float('nan')
    with pytest.raises(FloatingPointError, match='diverged'):
        draw_negatives(*broken)
    checks = []
    negatives = draw_negatives(*broken, deferred_checks=checks)  # no read, no raise here
    assert all(0 <= int(index.min()) and int(index.max()) < 5 for index in negatives)
    with pytest.raises(FloatingPointError, match='diverged'):
        raise_for_negative_weights(checks[0])
    empty_row = weights.clone()
    empty_row[1, 3] = 0
    with pytest.raises(ValueError, match='at least two distinct images'):
        raise_for_negative_weights(negative_weight_problems(*empty_row))


def train_steps(model, optimizer, batches, graphed):
    step = GraphedTrainStep(model, optimizer) if graphed else None
    history = []
    for seed, (images, inputs) in enumerate(batches):
        torch.manual_seed(seed)
        optimizer.param_groups[0]['lr'] = 1e-3 * 0.8 ** seed  # a schedule, as runners set it
        model.alpha_scale = min(1.0, seed / 6)  # ITC's distillation ramp (AlphaWarmupHook)
        if step is not None:
            losses = step(images, inputs)
        else:
            optimizer.zero_grad(set_to_none=True)
            losses = model.loss_on_inputs(images, inputs)
            sum(losses.values()).backward()
            optimizer.step()
        history.append({name: float(value.detach()) for name, value in losses.items()})
    if step is not None:
        step.check()
    return history


def fresh_model_and_batches(device, count=3, batch=4, **padding):
    """A tiny BLIP without dropout and ``count`` batches; the texts' lengths vary from batch
    to batch unless ``padding`` fixes them."""
    torch.manual_seed(0)
    model = build(prompt='a picture of ', text_overrides=NO_DROPOUT).to(device).train()
    generator = torch.Generator().manual_seed(5)
    batches = []
    for index in range(count):
        texts = [TEXTS[(index + row) % len(TEXTS)] * (1 + index % 3) for row in range(batch)]
        inputs = model.text_inputs(dict(text=texts), batch, device, **padding)
        batches.append((torch.randn(batch, 3, 32, 32, generator=generator).to(device), inputs))
    return model, batches


def test_optimizer_scalars_are_the_python_values_of_each_group():
    layer = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW([{'params': [layer.weight]},
                                   {'params': [layer.bias], 'lr': torch.tensor(0.1)}], lr=1e-3)
    first, second = optimizer_scalars(optimizer)
    assert not {'params', 'lr'} & (first.keys() | second.keys())
    assert first['betas'] == second['betas'] == (0.9, 0.999) and first['weight_decay'] == 0.01


def cuda_optimizer(model):
    return torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True, capturable=True)


@pytest.mark.parametrize('device', DEVICES)
def test_graphed_steps_train_as_the_plain_steps(device):
    """Off CUDA the step is the plain step, bit for bit. On CUDA, batches of two distinct
    images leave one possible hard negative per row and no dropout runs, so the replayed
    graphs (one per text length: 8, 16 and 24 tokens) must compute what eager steps do,
    with the learning rate and ITC's alpha ramp changing from step to step."""
    results = []
    for graphed in (False, True):
        model, batches = fresh_model_and_batches(device, count=12, batch=2,
                                                 pad_to_multiple_of=8)
        assert {inputs['input_ids'].shape[1] for _, inputs in batches} == {8, 16, 24}
        optimizer = (cuda_optimizer(model) if device == 'cuda' else
                     torch.optim.AdamW(model.parameters(), lr=1e-3))
        results.append((train_steps(model, optimizer, batches, graphed),
                        [p.detach().clone() for p in model.parameters()]))
    (plain_losses, plain_params), (graphed_losses, graphed_params) = results
    if device == 'cpu':
        assert plain_losses == graphed_losses
        assert all(torch.equal(a, b) for a, b in zip(plain_params, graphed_params))
    for plain, graphed in zip(plain_losses, graphed_losses):
        assert plain.keys() == graphed.keys() == {'loss_itc', 'loss_itm', 'loss_lm'}
        for name in plain:
            assert graphed[name] == pytest.approx(plain[name], rel=1e-5, abs=1e-6), name
    for plain, graphed in zip(plain_params, graphed_params):
        torch.testing.assert_close(graphed, plain, rtol=1e-5, atol=1e-6)


@CUDA
def test_captured_steps_refuse_changed_settings_and_uncapturable_optimizers():
    model, batches = fresh_model_and_batches('cuda', count=2, padding='max_length')
    with pytest.raises(ValueError, match='capturable=True'):
        step = GraphedTrainStep(model, torch.optim.AdamW(model.parameters()), warmup_steps=0)
        for images, inputs in batches:
            step(images, inputs)
    optimizer = cuda_optimizer(model)
    step = GraphedTrainStep(model, optimizer, warmup_steps=1)
    for images, inputs in batches * 2:
        step(images, inputs)
    assert len(step.captured) == 1  # texts padded to max_length: one shape, one graph
    optimizer.param_groups[0]['weight_decay'] = 0.5
    with pytest.raises(ValueError, match='Only the learning rates and alpha_scale'):
        step(images, inputs)


@CUDA
def test_a_diverged_step_raises_the_clear_error_after_the_replay():
    model, batches = fresh_model_and_batches('cuda', count=1, padding='max_length')
    images, inputs = batches[0]
    step = GraphedTrainStep(model, cuda_optimizer(model), warmup_steps=1)
    for _ in range(2):
        step(images, inputs)
    with torch.no_grad():
        model.vision_proj.weight.fill_(float('nan'))
    step(images, inputs)  # the replay itself reads nothing back
    with pytest.raises(FloatingPointError, match='diverged'):
        step.check()
