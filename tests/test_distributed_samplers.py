"""Training data on 2 ranks (gloo, CPU): distinct items per rank, a new order every epoch.

A real harness Runner (``build_runner``, ``launcher='pytorch'``: the process group and the
DDP wrapper of a machine without CUDA) trains the toy regressor for 2 epochs with mmengine's
``DefaultSampler``, which ``DistSamplerSeedHook`` re-seeds per epoch (``set_epoch``), while
``EpochSeedHook`` re-seeds torch per (seed, epoch, rank); CapFilt's ``CorpusMixSampler``
splits its epochs the same way.
"""
import pytest
import torch
from gloo_ranks import run_on_ranks
from mmengine.hooks import Hook
from toy_training import ToyPairs, ToyRegressor, toy_config

from harness.core.registry import DATASETS, HOOKS, MODELS
from harness.runner_builder import build_runner
from tasks.capfilt.sampler import CorpusMixSampler

EPOCHS = 2
ITEMS = 16  # ToyPairs
CORPUS = list(range(12))
DRAWS = {}  # per epoch: this process's dataset indices and torch's seed


@DATASETS.register_module(force=True)
class IndexedToyPairs(ToyPairs):
    """The toy pairs, each carrying its dataset index."""

    def __getitem__(self, index):
        return dict(super().__getitem__(index), index=index)


@MODELS.register_module(force=True)
class IndexedToyRegressor(ToyRegressor):
    """The toy regressor, ignoring the index its batches carry."""

    def forward(self, inputs, target, index, mode='loss'):
        return super().forward(inputs, target, mode)


@HOOKS.register_module(force=True)
class DrawRecorder(Hook):
    """Notes per epoch the seed torch runs from and the dataset indices this rank trains on."""

    priority = 'LOWEST'  # after EpochSeedHook and DistSamplerSeedHook

    def before_train_epoch(self, runner):
        DRAWS[runner.epoch] = dict(seed=torch.initial_seed(), indices=[])

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        DRAWS[runner.epoch]['indices'] += data_batch['index'].tolist()


def draws_on_rank(rank, work_dir):
    """Train the toy model on this rank, then draw 2 epochs of a CorpusMixSampler."""
    cfg = toy_config(work_dir, max_epochs=EPOCHS)
    cfg.update(launcher='pytorch', model=dict(type='IndexedToyRegressor'),
               custom_hooks=[*cfg['custom_hooks'], dict(type='DrawRecorder')])
    cfg['train_dataloader'].update(dataset=dict(type='IndexedToyPairs'),
                                   sampler=dict(type='DefaultSampler', shuffle=True))
    build_runner(cfg).train()
    sampler = CorpusMixSampler(CORPUS)  # its seed drawn on rank 0 and shared
    corpus_epochs = []
    for epoch in range(EPOCHS):
        sampler.set_epoch(epoch)
        corpus_epochs.append(list(sampler))
    return dict(runner=dict(DRAWS), corpus_seed=sampler.seed, corpus_epochs=corpus_epochs)


@pytest.fixture(scope='module')
def ranks(tmp_path_factory):
    """What each of 2 ranks drew (the ranks join their process group through the harness)."""
    return run_on_ranks(draws_on_rank, tmp_path_factory.mktemp('train'), join_group=False)


def assert_split(first, second, items):
    """The two ranks' items: disjoint and together every item once."""
    assert not set(first) & set(second)
    assert sorted(first + second) == list(range(items))


@pytest.mark.slow
def test_default_sampler_gives_each_rank_distinct_items_in_a_new_order_each_epoch(ranks):
    first, second = (result['runner'] for result in ranks)
    for epoch in range(EPOCHS):
        assert_split(first[epoch]['indices'], second[epoch]['indices'], ITEMS)
    assert first[0]['indices'] != first[1]['indices']
    assert set(first[0]['indices']) != set(first[1]['indices'])  # not a reordering of one half


@pytest.mark.slow
def test_epoch_seed_hook_seeds_each_rank_and_epoch_differently(ranks):
    seeds = [result['runner'][epoch]['seed'] for result in ranks for epoch in range(EPOCHS)]
    assert len(set(seeds)) == len(seeds)


@pytest.mark.slow
def test_corpus_mix_sampler_splits_the_shared_epoch_between_ranks(ranks):
    first, second = ranks
    assert first['corpus_seed'] == second['corpus_seed']
    whole = CorpusMixSampler(CORPUS, seed=first['corpus_seed'])
    for epoch in range(EPOCHS):
        assert_split(first['corpus_epochs'][epoch], second['corpus_epochs'][epoch], len(CORPUS))
        whole.set_epoch(epoch)
        indices = whole.epoch_indices()
        assert [first['corpus_epochs'][epoch], second['corpus_epochs'][epoch]] == \
            [indices[0::2], indices[1::2]]
    assert first['corpus_epochs'][0] != first['corpus_epochs'][1]
