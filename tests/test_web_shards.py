"""Streaming pre-training data from WebDataset shards: shard lists, rank/worker splits,
shuffling, bad samples, and shard-granular resumption of an interrupted epoch."""
import io
import itertools
import json

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from PIL import Image
from torch.utils.data import DataLoader

from harness.core.registry import DATASETS, HOOKS
from harness.runner_builder import register_mmengine_safe_globals
from tasks.datasets.tar_shards import (expand_braces, index_members, iter_samples,
                                       read_member, resolve_shards, sample_count, write_shard)
from tasks.datasets.web_shards import deal, shard_plan

SIZE = 16


def png(colour) -> bytes:
    """A small solid-colour PNG."""
    buffer = io.BytesIO()
    Image.new('RGB', (20, 20), colour).save(buffer, format='PNG')
    return buffer.getvalue()


def make_shards(folder, num_shards, per_shard, bad=None):
    """Shards of ``per_shard`` samples captioned ``'sample S P'``; ``bad[(s, p)]`` replaces
    a sample's fields. Returns the captions of the good samples."""
    good = set()
    for shard in range(num_shards):
        samples = []
        for position in range(per_shard):
            key = f'{shard:05d}{position:04d}'
            caption = f'sample {shard} {position}'
            fields = {'png': png((shard * 20, position * 10, 0)), 'txt': caption.encode(),
                      'json': json.dumps(dict(key=key, caption=caption)).encode()}
            fields = (bad or {}).get((shard, position), fields)
            if fields is not None and (shard, position) not in (bad or {}):
                good.add(caption)
            samples.append((key, fields))
        write_shard(folder / f'{shard:05d}.tar', samples)
    return good


def dataset(folder, **options):
    return DATASETS.build(dict(type='WebShardDataset', data_root=str(folder),
                               shards='{00000..00005}.tar', image_size=SIZE, train=False,
                               **options))


def test_brace_patterns_and_lists_name_the_shards(tmp_path):
    assert expand_braces('a/{008..011}.tar') == ['a/008.tar', 'a/009.tar', 'a/010.tar',
                                                 'a/011.tar']
    assert expand_braces('{x,y}-{0..1}') == ['x-0', 'x-1', 'y-0', 'y-1']
    make_shards(tmp_path, 3, 2)
    assert [p.name for p in resolve_shards(['{00000..00001}.tar', '00002.tar'], tmp_path)] \
        == ['00000.tar', '00001.tar', '00002.tar']
    assert len(resolve_shards('*.tar', tmp_path)) == 3
    with pytest.raises(FileNotFoundError, match='00003.tar'):
        resolve_shards('{00000..00007}.tar', tmp_path)


def test_shards_round_trip_with_counts_and_random_access(tmp_path):
    make_shards(tmp_path, 1, 3)
    path = tmp_path / '00000.tar'
    samples = list(iter_samples(path))
    assert [key for key, _ in samples] == ['000000000', '000000001', '000000002']
    assert samples[1][1]['txt'] == b'sample 0 1'
    assert sample_count(path) == 3
    (tmp_path / '00000_stats.json').unlink()
    assert sample_count(path) == 3  # counted from the tar headers
    key, fields = index_members(path)[2]
    assert read_member(path, *fields['png']) == samples[2][1]['png']


def test_ranks_and_workers_split_the_shards_without_overlap():
    plans = [shard_plan(23, epoch, seed=5, shuffle=True) for epoch in (0, 1)]
    assert plans[0] != plans[1] and sorted(plans[0]) == list(range(23))
    assert plans[0] == shard_plan(23, 0, seed=5, shuffle=True)
    parts = [deal(deal(plans[0], rank, 2), worker, 3) for rank in range(2) for worker in range(3)]
    assert sorted(itertools.chain(*parts)) == list(range(23))
    assert shard_plan(5, 0, 0, shuffle=False, finished=[1, 3]) == [0, 2, 4]


def test_every_good_sample_once_per_epoch_across_workers(tmp_path):
    good = make_shards(tmp_path, 6, 5)
    data = dataset(tmp_path, shuffle_buffer=4)
    data.start_epoch(epoch=1, seed=3)
    loader = DataLoader(data, batch_size=3, num_workers=2)
    texts, finished = [], []
    for batch in loader:
        assert batch['image'].shape[1:] == (3, SIZE, SIZE)
        texts += batch['text']
        finished += [int(s) for text in batch['finished_shards'] for s in text.split(',') if s]
    assert sorted(texts) == sorted(good)
    assert sorted(finished) == list(range(6))
    assert len(data) == 30


def test_shuffle_buffer_is_bounded_and_seeded(tmp_path):
    make_shards(tmp_path, 6, 5)
    def order(buffer, seed):
        data = dataset(tmp_path, shuffle_buffer=buffer)
        data.start_epoch(epoch=0, seed=seed)
        return [item['text'] for item in data]
    shard_order = shard_plan(6, 0, 0, shuffle=True)
    read_order = [f'sample {s} {p}' for s in shard_order for p in range(5)]
    assert order(1, 0) == read_order  # a buffer of one keeps the read order
    shuffled = order(4, 0)
    assert shuffled != read_order and shuffled == order(4, 0)
    # a sample leaves the buffer at most 3 places before it was read
    assert all(shuffled.index(text) >= read_order.index(text) - 3 for text in read_order)


def test_bad_samples_are_counted_skipped_and_reported(tmp_path):
    bad = {(0, 1): {'txt': b'no image'},
           (1, 2): {'png': png((0, 0, 0)), 'txt': b' ... '},
           (2, 0): {'png': b'not a png at all', 'txt': b'corrupt'}}
    good = make_shards(tmp_path, 6, 3, bad)
    damaged = tmp_path / '00004.tar'
    with open(damaged, 'r+b') as file:  # cut shard 4 in the middle of its second sample
        file.truncate(damaged.stat().st_size // 2)
    data = dataset(tmp_path, shuffle_buffer=2)
    texts = [item['text'] for item in data]
    assert set(texts) <= good and len(texts) == len(set(texts))
    assert {'sample 3 0', 'sample 5 2', 'sample 0 0', 'sample 4 0'} <= set(texts)
    assert 'sample 4 2' not in texts
    kinds = data.bad_sample_kinds()
    assert kinds['missing_member'] == 1 and kinds['empty_caption'] == 1
    assert kinds['bad_image'] == 1 and kinds['damaged_shard'] == 1
    report = data.bad_sample_report()
    assert report.count == 4 and any(name.endswith('00000.tar') for name in report.first_files)


class Recorder(BaseModel):
    """A one-weight model that records the texts of every batch it trains on."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen = []

    def forward(self, image, text=None, mode='loss', **_):
        self.seen += list(text)
        return dict(loss=(self.weight - image.mean()) ** 2)


class StopAt(Hook):
    """A hook killing training after iteration ``iteration`` (as a crash would)."""

    priority = 'LOWEST'

    def __init__(self, iteration):
        self.iteration = iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.iteration:
            raise KeyboardInterrupt


def train(folder, work_dir, model, stop_at=None, resume=False):
    register_mmengine_safe_globals()
    runner = Runner(
        model=model, work_dir=str(work_dir), experiment_name=f'shards{stop_at}',
        train_dataloader=dict(dataset=dict(type='WebShardDataset', data_root=str(folder),
                                           shards='*.tar', image_size=SIZE, train=False,
                                           shuffle_buffer=3),
                              sampler=None, batch_size=2, num_workers=0,
                              collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=True, max_epochs=3),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=3, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=100)),
        custom_hooks=[dict(type='ShardProgressHook'),
                      dict(type='PlainCheckpointMetaHook')], randomness=dict(seed=7),
        resume=resume, default_scope='harness')
    if stop_at:
        runner.register_hook(StopAt(stop_at))
    try:
        runner.train()
    except KeyboardInterrupt:
        pass
    return runner


def test_an_interrupted_epoch_resumes_at_shard_granularity(tmp_path):
    assert HOOKS.get('ShardProgressHook') is not None
    good = make_shards(tmp_path / 'data', 6, 5)  # 30 samples, 15 iterations an epoch
    first = Recorder()
    train(tmp_path / 'data', tmp_path / 'run', first, stop_at=26)  # epoch 1, iteration 11
    checkpoint = torch.load(tmp_path / 'run' / 'iter_24.pth', weights_only=False)
    state = checkpoint['meta']['web_shards']
    assert state['epoch'] == 1
    finished = {name.rsplit('/', 1)[1] for name in state['finished_by_rank'][0]}
    assert finished  # some shards were done when the checkpoint was taken
    second = Recorder()
    train(tmp_path / 'data', tmp_path / 'run', second, resume=True)
    before = first.seen[30:48]  # epoch 1 up to the checkpoint (iterations 16-24)
    after = second.seen
    assert sorted(set(before) | set(after[:len(after) - 30])) == sorted(good)  # none skipped
    repeated = set(before) & set(after[:len(after) - 30])
    in_flight = {text for text in repeated if f'{int(text.split()[1]):05d}.tar' in finished}
    assert not in_flight  # no sample of a finished shard is seen again
    assert len(after) - 30 == 30 - 5 * len(finished)  # the finished shards are all skipped
    assert sorted(after[-30:]) == sorted(good)  # the next epoch is whole
