"""Sharded, resumable loops over web images: shard files, an index of finished shards, ranks.

Items are cut into shards of ``shard_size`` consecutive items; shard ``s`` belongs to rank
``s % world_size`` (:func:`tasks.sharding.blocks_of_rank`), so a shard's members,
and hence its output, do not depend on the number of processes. Each finished shard is
written atomically to ``<folder>/shard_XXXXX.json`` and then added to ``<folder>/index.json``
(under a file lock: ranks finish shards concurrently). A re-run skips the shards the index
lists. The index also holds the job's fingerprint (checkpoint, settings, item count, shard
size); shards written for another fingerprint are discarded before any work starts.
Ranks must share the folder (one machine, or a shared file system).
"""
import fcntl
import json
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Set, Tuple

from mmengine.dist import barrier, get_dist_info

from harness.core.files import atomic_write_text

from ..progress import ProgressMeter
from ..sharding import Block, blocks_of_rank, blocks_of_sizes

INDEX_FILE = 'index.json'


class ShardStore:
    """The shard files and the index of finished shards of one sharded job.

    Args:
        folder: where the shard files and ``index.json`` live.
        fingerprint: JSON-able description of the job; shards of another job are stale.
    """

    def __init__(self, folder: Path, fingerprint: dict):
        self.folder = Path(folder)
        self.fingerprint = json.loads(json.dumps(fingerprint))  # as it reads back from JSON
        self.index_path = self.folder / INDEX_FILE

    def shard_path(self, shard: int) -> Path:
        """The output file of shard ``shard``."""
        return self.folder / f'shard_{shard:05d}.json'

    def _read_index(self) -> dict:
        if not self.index_path.exists():
            return dict(fingerprint=self.fingerprint, finished=[])
        try:
            return json.loads(self.index_path.read_text())
        except ValueError as error:
            raise ValueError(f'{self.index_path} is not a shard index ({error}); delete '
                             f'{self.folder} to regenerate its shards') from error

    def discard_if_stale(self) -> bool:
        """Delete the shards of another job (different fingerprint); True if any were deleted."""
        if self._read_index()['fingerprint'] == self.fingerprint:
            return False
        for path in self.folder.glob('shard_*.json'):
            path.unlink()
        self.index_path.unlink()
        return True

    def finished(self) -> Set[int]:
        """The shards whose output is written."""
        return set(self._read_index()['finished'])

    def save(self, shard: int, records: list) -> None:
        """Write shard ``shard``'s records atomically, then add it to the index."""
        atomic_write_text(self.shard_path(shard), json.dumps(dict(shard=shard, records=records)))
        with open(self.folder / (INDEX_FILE + '.lock'), 'w') as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            index = self._read_index()
            index['finished'] = sorted(set(index['finished']) | {shard})
            atomic_write_text(self.index_path, json.dumps(index, indent=1, sort_keys=True))

    def load(self, num_shards: int) -> list:
        """The records of shards ``0 .. num_shards - 1`` in order (all must be finished)."""
        missing = sorted(set(range(num_shards)) - self.finished())
        if missing:
            raise RuntimeError(f'{self.index_path}: shards {missing[:10]} are not finished; '
                               f'a rank stopped early or does not share {self.folder}. '
                               f'Re-run the stage to finish them')
        records = []
        for shard in range(num_shards):
            path = self.shard_path(shard)
            try:
                records.extend(json.loads(path.read_text())['records'])
            except (OSError, ValueError, KeyError) as error:
                raise ValueError(f'{path} is listed as finished in {self.index_path} but '
                                 f'cannot be read ({error}); delete {self.folder} to '
                                 f'regenerate its shards') from error
        return records


def run_sharded(folder: Path, job: dict, num_items: int, shard_size: int,
                process_shard: Callable[[Block], list], desc: str,
                block_sizes: Optional[Sequence[int]] = None) -> Tuple[list, dict]:
    """Run ``process_shard`` on this rank's unfinished shards and return every shard's records.

    Args:
        folder: where the shards and their index live.
        job: JSON-able settings that determine the output (checkpoint identity, decoding...);
            with the item count and shard size it is the fingerprint of the shards.
        num_items: items to process (web images).
        shard_size: items per shard.
        process_shard: the records of one shard, a :class:`Block` of item indices.
        desc: what the loop does, for progress lines.
        block_sizes: items per shard when shards are not all ``shard_size`` long (one
            shard per input tar shard of a :class:`.shard_images.WebShardImageDataset`).

    Rank 0 first discards stale shards; all ranks then work and wait for each other, so
    the records returned (in shard order) are the same on every rank.

    Returns:
        ``(records, throughput)``; throughput is ``{'images/s': ...}`` of this run's work
        on this rank (empty when every shard was already finished).
    """
    sizes = dict(block_sizes=list(block_sizes)) if block_sizes is not None else {}
    store = ShardStore(folder, dict(job, num_items=num_items, shard_size=shard_size, **sizes))
    rank, world_size = get_dist_info()
    blocks = (blocks_of_sizes(block_sizes, rank, world_size) if block_sizes is not None
              else blocks_of_rank(num_items, shard_size, rank, world_size))
    store.folder.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        store.discard_if_stale()
    barrier()
    finished = store.finished()
    todo: List[Block] = [block for block in blocks if block.index not in finished]
    progress = ProgressMeter(sum(block.stop - block.start for block in todo), desc,
                             unit='images')
    for block in todo:
        store.save(block.index, process_shard(block))
        progress.update(block.stop - block.start)
    barrier()
    throughput = {'images/s': progress.rate} if todo else {}
    num_shards = len(block_sizes) if block_sizes is not None else -(-num_items // shard_size)
    return store.load(num_shards), throughput
