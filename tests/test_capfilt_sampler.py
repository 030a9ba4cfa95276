"""CorpusMixSampler: epoch size and human-pair share held at the no-CapFilt corpus's."""
from collections import Counter

import pytest

from tasks.capfilt import sampler as sampler_module
from tasks.capfilt.sampler import CorpusMixSampler, permutation_stream

CORPUS = list(range(12))  # 3 human pairs at the head, then 9 web/synthetic pairs
COMPOSITION = dict(human=3, web=5)  # the no-CapFilt corpus: 8 pairs, 3/8 of them human


def epochs(sampler, count):
    draws = []
    for epoch in range(count):
        sampler.set_epoch(epoch)
        draws.append(list(sampler))
    return draws


def test_the_stream_walks_whole_permutations_across_epoch_boundaries():
    stream = permutation_stream(5, 3, 9, seed=7)  # the end of permutation 0, all of 1, 2 items
    assert sorted(stream[2:7].tolist()) == list(range(5))
    assert permutation_stream(5, 0, 12, 7)[3:12].tolist() == stream.tolist()


def test_uncurated_epoch_size_draws_every_pair_equally_often():
    sampler = CorpusMixSampler(CORPUS, epoch_size='uncurated', composition=COMPOSITION, seed=0)
    draws = epochs(sampler, 3)
    assert len(sampler) == 8 and [len(epoch) for epoch in draws] == [8, 8, 8]
    assert Counter(index for epoch in draws for index in epoch) == {i: 2 for i in CORPUS}
    assert draws[0] != draws[1]


def test_uncurated_share_fixes_the_human_pairs_per_epoch():
    steps_and_share = CorpusMixSampler(CORPUS, epoch_size='uncurated', human_share='uncurated',
                                       composition=COMPOSITION, seed=1)
    share_only = CorpusMixSampler(CORPUS, human_share='uncurated', composition=COMPOSITION,
                                  seed=1)
    for epoch in epochs(steps_and_share, 4):
        assert len(epoch) == 8 and sum(index < 3 for index in epoch) == 3
    for epoch in epochs(share_only, 4):
        assert len(epoch) == 12 and sum(index < 3 for index in epoch) == round(3 / 8 * 12)
    human = [i for epoch in epochs(share_only, 3) for i in epoch if i < 3]
    assert Counter(human) == {0: 4, 1: 4, 2: 4}  # human pairs cycle evenly too


def test_a_fixed_seed_gives_the_same_epochs_and_corpus_sizes_change_nothing_by_default():
    first = epochs(CorpusMixSampler(CORPUS, human_share=0.5, composition=COMPOSITION, seed=3), 2)
    again = epochs(CorpusMixSampler(CORPUS, human_share=0.5, composition=COMPOSITION, seed=3), 2)
    assert first == again
    plain = CorpusMixSampler(CORPUS, seed=3)
    assert len(plain) == 12 and sorted(next(iter(epochs(plain, 1)))) == CORPUS


def test_ranks_split_each_epoch_without_overlap(monkeypatch):
    parts = []
    for rank in (0, 1):
        monkeypatch.setattr(sampler_module, 'get_dist_info', lambda rank=rank: (rank, 2))
        sampler = CorpusMixSampler(CORPUS, epoch_size=7, seed=5)
        sampler.set_epoch(2)
        parts.append(list(sampler))
    whole = CorpusMixSampler(CORPUS, epoch_size=7, seed=5)
    whole.set_epoch(2)
    indices = whole.epoch_indices()
    assert [len(part) for part in parts] == [4, 4]
    assert parts[0] + parts[1][:3] == indices[0::2] + indices[1::2]


@pytest.mark.parametrize('options, named', [
    (dict(epoch_size='uncurated'), 'composition'),
    (dict(human_share=0.3), 'composition'),
    (dict(epoch_size=0), 'epoch_size'),
    (dict(human_share=1.5, composition=COMPOSITION), 'human_share'),
])
def test_impossible_settings_are_refused_by_name(options, named):
    with pytest.raises(ValueError, match=named):
        CorpusMixSampler(CORPUS, seed=0, **options)
