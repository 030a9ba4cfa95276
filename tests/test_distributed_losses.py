"""BLIP's losses on 2 ranks (gloo, CPU) gather what the official code gathers.

The momentum queues take the features and image ids of every rank's batch (as one process
stepping on the concatenated batch would), and retrieval fine-tuning with
``negative_all_rank`` draws ITM hard negatives from all ranks' pairs, its gradients flowing
back through the gathered image embeddings to the rank that encoded them (BLIP's
``concat_all_gather`` and ``all_gather_with_grad``).
"""
import contextlib

import pytest
import torch
from gloo_ranks import one_thread, run_on_ranks
from hf_builders import tiny_blip
from mmengine.optim import OptimWrapper
from mmengine.registry import MODEL_WRAPPERS

import backbones.blip
from backbones.blip_losses import gather_with_grad
from harness.distributed import CPU_MODEL_WRAPPER

BATCH = 3  # pairs per rank
TEXTS = ['a red circle left of a blue square', 'two green triangles', 'a small dotted shape',
         'a large striped square above the circle', 'the blue triangle', 'a circle near a square']
QUEUE_IDS = [10, 11, 10, 12, 13, 12]  # image ids of the queue step: captions share images
# Retrieval fine-tuning step: every pair of rank 0 shows one image, so none of its pairs has
# a negative on rank 0; rank 1's pairs are three other images.
ONE_IMAGE_IDS = [7, 7, 7, 1, 2, 3]


def pairs(image_ids, ranks=(0, 1)) -> dict:
    """The collated batch of the given ranks' pairs (in rank order)."""
    images = torch.randn(2 * BATCH, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    rows = [row for rank in ranks for row in range(rank * BATCH, (rank + 1) * BATCH)]
    return dict(image=images[rows], text=[TEXTS[row] for row in rows],
                image_id=torch.tensor([image_ids[row] for row in rows]))


def blip(losses, **args):
    """The tiny BLIP with seeded weights: the same on every rank (eval mode: no dropout)."""
    torch.manual_seed(0)
    return tiny_blip(losses, image_id_positives=True, **args)


def queue_state(model) -> dict:
    return {name: buffer.clone() for name, buffer in model.queue.named_buffers()}


def sgd(model) -> OptimWrapper:
    return OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))


@contextlib.contextmanager
def recorded(module, name: str, calls: list, retain_grad: bool = False):
    """``module.name`` wrapped so that each call appends ``(args, result)`` to ``calls``;
    with ``retain_grad`` its tensor argument and result keep their gradients."""
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        if retain_grad:
            args[0].retain_grad()
        result = original(*args, **kwargs)
        if retain_grad:
            result.retain_grad()
        calls.append((args, result))
        return result

    setattr(module, name, wrapper)
    try:
        yield calls
    finally:
        setattr(module, name, original)


def gather_grad_check(rank: int) -> dict:
    """Gather a rank-specific tensor with gradient; weight the result per rank."""
    local = (torch.arange(6.).view(BATCH, 2) + 10 * rank).requires_grad_()
    gathered = gather_with_grad(local)
    ((torch.arange(12.).view(2 * BATCH, 2) * (rank + 1)) * gathered).sum().backward()
    return dict(gathered=gathered.detach(), grad=local.grad)


def queue_step(rank: int) -> dict:
    """One DDP training step (the harness's CPU model wrapper) on this rank's pairs."""
    model = blip(('itc',))
    wrapped = MODEL_WRAPPERS.build(dict(CPU_MODEL_WRAPPER), default_args=dict(module=model))
    wrapped.train_step(pairs(QUEUE_IDS, ranks=(rank,)), sgd(model))
    return queue_state(model)


def all_rank_negatives_step(rank: int) -> dict:
    """ITC+ITM with negatives from all ranks; rank 1 back-propagates its loss times 0, so
    every gradient reaching its encoder comes from rank 0's loss."""
    model = blip(('itc', 'itm'), negative_all_rank=True)
    batch = pairs(ONE_IMAGE_IDS, ranks=(rank,))
    with recorded(backbones.blip, 'gather_with_grad', [], retain_grad=True) as gathers, \
            recorded(backbones.blip, 'draw_negatives', []) as draws:
        losses = model.loss(batch['image'], dict(text=batch['text'], image_id=batch['image_id']))
        total = sum(losses.values())
        (total if rank == 0 else 0 * total).backward()
    [((local,), gathered)] = gathers
    [(_, (negative_texts, negative_images))] = draws
    return dict(losses={name: float(value) for name, value in losses.items()},
                negative_texts=negative_texts.tolist(), negative_images=negative_images.tolist(),
                local_grad=local.grad, gathered_grad=gathered.grad,
                encoder_grad=sum(float(p.grad.abs().sum())
                                 for p in model.visual_encoder.parameters()))


def steps_on_rank(rank: int) -> dict:
    return dict(gather=gather_grad_check(rank), queue=queue_step(rank),
                all_rank=all_rank_negatives_step(rank))


@pytest.fixture(scope='module')
def ranks():
    """What each of 2 gloo ranks computed (one process group for all the checks)."""
    return run_on_ranks(steps_on_rank)


@pytest.mark.slow
def test_gather_with_grad_concatenates_and_sums_the_gradients_of_all_ranks(ranks):
    expected = torch.cat([torch.arange(6.).view(BATCH, 2) + 10 * rank for rank in (0, 1)])
    weight_sum = torch.arange(12.).view(2 * BATCH, 2) * (1 + 2)  # rank r weighs by r + 1
    for rank, result in enumerate(ranks):
        assert torch.equal(result['gather']['gathered'], expected)
        assert torch.equal(result['gather']['grad'],
                           weight_sum[rank * BATCH:(rank + 1) * BATCH])


@pytest.mark.slow
def test_queues_after_a_step_on_two_ranks_equal_one_process_on_both_batches(ranks):
    model = blip(('itc',))
    with one_thread():
        model.train_step(pairs(QUEUE_IDS), sgd(model))
    single = queue_state(model)
    assert int(single['ptr_queue']) == 2 * BATCH
    assert single['idx_queue'][0, :2 * BATCH].tolist() == QUEUE_IDS
    for result in ranks:
        assert torch.equal(result['queue']['ptr_queue'], single['ptr_queue'])
        assert torch.equal(result['queue']['idx_queue'], single['idx_queue'])
        # Each rank pads its texts to its own longest one: equal up to rounding.
        torch.testing.assert_close(result['queue']['image_queue'], single['image_queue'])
        torch.testing.assert_close(result['queue']['text_queue'], single['text_queue'])


def test_the_one_image_batch_has_no_negative_on_its_own():
    batch = pairs(ONE_IMAGE_IDS, ranks=(0,))
    with pytest.raises(ValueError, match='negative of nonzero weight'):
        blip(('itc', 'itm')).loss(batch['image'], dict(text=batch['text'],
                                                       image_id=batch['image_id']))


@pytest.mark.slow
def test_negative_all_rank_draws_from_the_other_rank_and_sends_gradients_back(ranks):
    first, second = (result['all_rank'] for result in ranks)
    assert all(torch.isfinite(torch.tensor(value)) for value in first['losses'].values())
    # Rank 0's pairs all show one image: every negative is one of rank 1's pairs (3..5).
    assert all(index >= BATCH for index in first['negative_texts'] + first['negative_images'])
    # Rank 0's loss sends gradient to rank 1's image embeddings through the gather ...
    to_second = first['gathered_grad'][BATCH:]
    assert to_second.abs().sum() > 0
    torch.testing.assert_close(second['local_grad'], to_second)
    # ... and on into rank 1's encoder, whose own loss counted zero times.
    assert torch.count_nonzero(second['gathered_grad']) == 0
    assert second['encoder_grad'] > 0
