"""Streaming image-text pre-training data from WebDataset/img2dataset tar shards.

Each epoch the shard list is permuted from ``(seed, epoch)`` (the runner's seed, as
:class:`harness.hooks.EpochSeedHook` seeds everything else), the shards a resumed epoch
already finished are dropped, and the rest are dealt round robin to ranks, then to the
DataLoader workers of a rank: no shard is read twice in an epoch. A worker streams its
shards through a bounded shuffle buffer of encoded samples and decodes a sample when it
leaves the buffer, with the transforms and caption cleaning of
:class:`.image_text.ImageTextPairDataset`.

Resumption is per shard: an item whose emission empties its shard from the buffer (the
shard fully read) names it in ``finished_shards`` (comma-separated indices, so the field
collates as text), and :class:`.shard_progress.ShardProgressHook` keeps the shards whose
every sample was trained on in the checkpoint.

Bad samples (no image or caption member, a caption that cleans to nothing, an
undecodable image, a damaged tar) are skipped, counted per kind in shared memory (all
workers) and reported by :meth:`WebShardDataset.bad_sample_report`; the first few are
logged. A run never stops for one.
"""
import collections
import json
import logging
import os
import tarfile
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.dist import get_dist_info
from mmengine.logging import print_log
from torch.utils.data import IterableDataset, get_worker_info

from harness.core.registry import DATASETS

from ..transforms import FINETUNE_CROP_SCALE, build_image_transform
from .annotations import cleaned_caption
from .base import REPORTED_FILES, BadSampleReport
from .errors import BadSampleError
from .media import decode_image
from .roots import resolve_data_root
from .tar_shards import image_field, iter_samples, resolve_shards, sample_count

BAD_KINDS = ('missing_member', 'empty_caption', 'bad_image', 'damaged_shard')
LOGGED_PER_WORKER = 5
ShardList = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]


def shard_plan(num_shards: int, epoch: int, seed: int, shuffle: bool,
               finished: Iterable[int] = ()) -> List[int]:
    """The epoch's shard order: a ``(seed, epoch)`` permutation less the finished shards."""
    order = (np.random.default_rng([seed, epoch]).permutation(num_shards).tolist()
             if shuffle else list(range(num_shards)))
    done = set(finished)
    return [shard for shard in order if shard not in done]


def deal(plan: Sequence[int], part: int, parts: int) -> List[int]:
    """Part ``part`` of ``parts`` of a shard plan, dealt round robin (parts never overlap)."""
    return list(plan[part::parts])


@DATASETS.register_module()
class WebShardDataset(IterableDataset):
    """Image-caption pairs streamed from WebDataset tar shards (``img2dataset`` output).

    A sample needs an image member (``jpg``, ``jpeg``, ``png``, ``webp`` or ``bmp``) and
    a caption: the ``txt`` member, else the ``caption`` of the ``json`` member.

    Item: ``{'image': FloatTensor[3, S, S], 'text': str, 'image_id': int, 'index': int,
    'shard': int, 'finished_shards': str}``; ``image_id`` is unique per sample
    (``shard * 2**32 + position``), ``index`` the position in the shard.

    Args:
        data_root: folder relative shard names start from (or a data source: 'toyworld').
        shards: a brace pattern (``'web/{00000..00099}.tar'``), a glob, or a list of them.
        image_size, max_words, train, hflip, crop_scale, preprocessing: as
            :class:`.image_text.ImageTextPairDataset`.
        shuffle: permute the shards every epoch and pass samples through the buffer.
        shuffle_buffer: samples (encoded) a worker holds to shuffle; 0 or 1 keeps order.
        seed: shard-order seed until :meth:`start_epoch` gives the runner's.
    """

    def __init__(self, data_root, shards: ShardList, image_size: int = 224,
                 max_words: int = 30, train: bool = True, hflip: bool = True,
                 crop_scale: Sequence[float] = FINETUNE_CROP_SCALE, shuffle: bool = True,
                 shuffle_buffer: int = 1000, seed: int = 0,
                 preprocessing: Optional[dict] = None):
        super().__init__()
        self.data_root = resolve_data_root(data_root)
        self.shards: List[Path] = resolve_shards(shards, self.data_root)
        self.counts = [sample_count(shard) for shard in self.shards]
        self.max_words = max_words
        self.transform = build_image_transform(image_size, train=train, hflip=hflip,
                                               crop_scale=crop_scale, preprocessing=preprocessing)
        self.shuffle = shuffle
        self.shuffle_buffer = max(1, shuffle_buffer)
        self.seed, self.epoch, self.finished = seed, 0, frozenset()
        self.rank, self.world_size = get_dist_info()
        self._bad = torch.zeros(len(self.shards), len(BAD_KINDS),
                                dtype=torch.int64).share_memory_()
        self._read = torch.zeros(len(self.shards), dtype=torch.int64).share_memory_()

    def start_epoch(self, epoch: int, seed: int, finished: Iterable[int] = ()) -> None:
        """Plan ``epoch`` with ``seed``, leaving out the ``finished`` shard indices.

        Call before the DataLoader's iterator is made (workers copy the dataset then).
        """
        self.epoch, self.seed, self.finished = epoch, seed, frozenset(finished)
        self.rank, self.world_size = get_dist_info()

    def rank_shards(self) -> List[int]:
        """The shards this rank reads in the current epoch, in reading order."""
        plan = shard_plan(len(self.shards), self.epoch, self.seed, self.shuffle, self.finished)
        return deal(plan, self.rank, self.world_size)

    def __len__(self) -> int:
        """Samples in this rank's shards this epoch (bad ones, skipped, included)."""
        return sum(self.counts[shard] for shard in self.rank_shards())

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        state = _StreamState(np.random.default_rng([self.seed, self.epoch, self.rank, worker]))
        for shard in deal(self.rank_shards(), worker, workers):
            for position, fields in self._raw_samples(shard, state):
                state.add(shard, position, fields)
                if len(state.buffer) >= self.shuffle_buffer:
                    yield from self._emit(state)
            state.fully_read(shard)
        while state.buffer:
            yield from self._emit(state)

    def _emit(self, state: '_StreamState') -> Iterator[dict]:
        """Take one random sample out of the buffer; yield it decoded unless it is bad."""
        shard, position, fields = state.take()
        try:
            item = self._decode(shard, position, fields)
        except BadSampleError as error:
            kind = 'empty_caption' if error.media is None else 'bad_image'
            self._count(shard, kind, state, str(error))
            return
        item['finished_shards'] = state.announce()
        yield item

    def _decode(self, shard: int, position: int, fields: dict) -> dict:
        """Cleaned caption and transformed image of one sample (BadSampleError if bad)."""
        path = self.shards[shard]
        caption = fields['txt'].decode('utf-8', 'replace') if 'txt' in fields else \
            str(json.loads(fields['json']).get('caption') or '')
        text = cleaned_caption(caption, self.max_words, path, position)
        ext = image_field(fields)
        image = decode_image(fields[ext], path, position,
                             media=f'{path}:{fields["__key__"].decode()}.{ext}')
        return {'image': self.transform(image), 'text': text,
                'image_id': shard * 2 ** 32 + position, 'index': position, 'shard': shard}

    def _raw_samples(self, shard: int, state: '_StreamState') -> Iterator[tuple]:
        """``(position, fields)`` of one shard's samples that have an image and a caption
        member; the others, and the unread rest of a damaged tar, are counted as bad."""
        path = self.shards[shard]
        read = 0
        try:
            for position, (key, fields) in enumerate(iter_samples(path)):
                read += 1
                self._read[shard] += 1
                if image_field(fields) is None or not ('txt' in fields or 'json' in fields):
                    self._count(shard, 'missing_member', state, f'{path}: sample {key!r} lacks '
                                f'an image or caption member (has {sorted(fields)})')
                    continue
                yield position, dict(fields, __key__=key.encode())
        except (tarfile.TarError, OSError, EOFError, ValueError) as error:
            self._count(shard, 'damaged_shard', state,
                        f'{path}: damaged tar ({error}); the rest of the shard is skipped')
            return
        if read < self.counts[shard]:  # a tar cut at a member boundary ends without error
            self._count(shard, 'damaged_shard', state, f'{path}: {read} samples, but its '
                        f'stats file says {self.counts[shard]}; the shard is truncated')

    def _count(self, shard: int, kind: str, state: '_StreamState', message: str) -> None:
        """Count one bad sample (shared by all workers); log the first few of this worker."""
        self._bad[shard, BAD_KINDS.index(kind)] += 1
        state.logged += 1
        if state.logged <= LOGGED_PER_WORKER:
            print_log(f'WebShardDataset: skipping a bad sample ({kind}): {message}',
                      logger='current', level=logging.WARNING)

    def bad_sample_kinds(self) -> Dict[str, int]:
        """Bad samples met so far (every worker) by kind; ``damaged_shard`` counts shards."""
        return dict(zip(BAD_KINDS, self._bad.sum(dim=0).tolist()))

    def bad_sample_report(self) -> BadSampleReport:
        """Bad samples met so far: count, samples read, and the first few shards holding them."""
        per_shard = self._bad.sum(dim=1)
        shards = torch.nonzero(per_shard).flatten().tolist()
        return BadSampleReport(int(per_shard.sum()), int(self._read.sum()),
                               [str(self.shards[s]) for s in shards[:REPORTED_FILES]])

    def shard_names(self, indices: Iterable[int]) -> List[str]:
        """Stable names (paths as given, resolved) of shard indices, for checkpoints."""
        return sorted(str(self.shards[index]) for index in indices)

    def shard_indices(self, names: Iterable[str]) -> List[int]:
        """The indices of shard names from :meth:`shard_names`; unknown names are ignored
        (a resumed run may read another shard list)."""
        position = {str(path): index for index, path in enumerate(self.shards)}
        return sorted(position[name] for name in names if name in position)


class _StreamState:
    """One worker's shuffle buffer and the bookkeeping of which shards it has finished.

    A shard is finished once fully read and none of its samples is left in the buffer;
    :meth:`announce` hands the finished shards to the next good item.
    """

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.buffer: List[tuple] = []
        self.pending: Dict[int, int] = collections.Counter()
        self.read: set = set()
        self.finished: List[int] = []
        self.logged = 0

    def add(self, shard: int, position: int, fields: dict) -> None:
        """Put a sample into the buffer."""
        self.buffer.append((shard, position, fields))
        self.pending[shard] += 1

    def fully_read(self, shard: int) -> None:
        """Note that ``shard`` has no more samples to read."""
        self.read.add(shard)
        if not self.pending[shard]:
            self.finished.append(shard)

    def take(self) -> tuple:
        """A uniformly random sample out of the buffer (swap with the last, pop)."""
        pick = int(self.rng.integers(len(self.buffer)))
        self.buffer[pick], self.buffer[-1] = self.buffer[-1], self.buffer[pick]
        shard, position, fields = self.buffer.pop()
        self.pending[shard] -= 1
        if not self.pending[shard] and shard in self.read:
            self.finished.append(shard)
        return shard, position, fields

    def announce(self) -> str:
        """The shards finished since the last call, comma-separated ('' for none)."""
        text = ','.join(map(str, self.finished))
        self.finished.clear()
        return text
