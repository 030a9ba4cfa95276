"""Per-item inference over a dataset, sharded across ranks, resumable and cached on disk.

Serves every evaluation that produces one JSON-able output per dataset item (a caption per
image, an answer per question). Items are cut into fixed batches that do not depend on the
world size; batch ``b`` is run by rank ``b % world_size`` (so outputs are bit-identical to
one process) and the outputs are gathered once. Each rank writes its outputs to the work
dir as it goes (atomically, every few batches), so an interrupted evaluation resumes where
it stopped - with any number of processes - and a finished one is reused when re-run with
the same ``tag`` (which names the checkpoint and the inference settings) on the same inputs
(:func:`tasks.cache_keys.dataset_identity`: images, preprocessing, annotation files).
"""
import hashlib
import json
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch
from mmengine import dist
from torch.utils.data import DataLoader, Subset

from harness.core.files import atomic_write_text

from .cache_keys import dataset_identity
from .progress import ProgressMeter
from .sharding import blocks_of_rank

# ``run(batch, indices) -> one output per index``: the batch is the collated dataset items.
BatchFunction = Callable[[dict, List[int]], list]


def settings_tag(prefix: str, cache_key: Optional[str], settings: dict) -> str:
    """Names the output files of one (checkpoint, settings) pair: ``<prefix>_<sha1[:12]>``."""
    digest = hashlib.sha1(json.dumps([cache_key, settings], sort_keys=True).encode())
    return f'{prefix}_{digest.hexdigest()[:12]}'


def load_cached(work_dir: Path, tag: str) -> Dict[int, dict]:
    """Outputs ``{dataset index: output}`` saved by any rank earlier under ``tag``."""
    done = {}
    for path in sorted(Path(work_dir).glob(f'{tag}*.json')):
        try:
            done.update({int(k): v for k, v in json.loads(path.read_text())['predictions'].items()})
        except (ValueError, KeyError) as error:
            raise ValueError(f'{path} is not a prediction cache ({error}); delete it to '
                             f'compute its predictions again') from error
    return done


def save_outputs(path: Path, outputs: dict) -> None:
    """Atomically write a prediction cache file."""
    atomic_write_text(path, json.dumps({'predictions': {str(k): v for k, v in outputs.items()}}))


def run_batches(dataset, run: BatchFunction, batches: List[List[int]], done: Dict[int, dict], *,
                num_workers: int, part_file: Optional[Path], save_every: int,
                desc: str, unit: str) -> Dict[int, dict]:
    """Run ``run`` on this rank's ``batches`` (lists of dataset indices) not yet in ``done``."""
    todo = [batch for batch in batches if any(i not in done for i in batch)]
    mine = {i: done[i] for batch in batches for i in batch if i in done}
    progress = ProgressMeter(sum(len(b) for b in todo), desc, unit=unit)
    with torch.no_grad():
        for number, indices in enumerate(todo):
            loader = DataLoader(Subset(dataset, indices), batch_size=len(indices),
                                num_workers=num_workers,
                                collate_fn=getattr(dataset, 'collate_fn', None))
            outputs = run(next(iter(loader)), indices)
            mine.update(zip(indices, outputs))
            progress.update(len(indices))
            if part_file and (number + 1) % save_every == 0:
                save_outputs(part_file, mine)
    if part_file and todo:
        save_outputs(part_file, mine)
    return mine


def infer_dataset(dataset, run: BatchFunction, *, tag: str, work_dir=None, batch_size: int = 32,
                  num_workers: int = 0, save_every: int = 10, desc: str = 'inference',
                  unit: str = 'items') -> Tuple[list, dict]:
    """``run`` over every item of ``dataset`` (resuming from and saving to ``work_dir``).

    Returns the outputs in dataset order (the same on every rank) and the throughput
    (``{unit + '/s': rate}``; empty when every output came from the cache).
    """
    rank, world_size = dist.get_dist_info()
    if work_dir:  # the inputs' identity hashes every item's file: only worth it when caching
        tag = f'{tag}_{dataset_identity(dataset)}'
    done = load_cached(work_dir, tag) if work_dir else {}
    batches = [block.items for block in blocks_of_rank(len(dataset), batch_size, rank, world_size)]
    part_file = Path(work_dir) / f'{tag}.part{rank}.json' if work_dir else None
    started = time.perf_counter()
    mine = run_batches(dataset, run, batches, done, num_workers=num_workers, part_file=part_file,
                       save_every=save_every, desc=desc, unit=unit)
    computed = sum(1 for i in mine if i not in done)
    elapsed = time.perf_counter() - started
    merged = {}
    for part in dist.all_gather_object(mine):
        merged.update(part)
    if work_dir and dist.is_main_process():
        save_outputs(Path(work_dir) / f'{tag}.json', merged)
        for part in Path(work_dir).glob(f'{tag}.part*.json'):
            part.unlink()
    outputs = [merged[i] for i in sorted(merged)]
    return outputs, ({f'{unit}/s': computed / elapsed} if computed else {})


def on_main_process(score, *args):
    """``score(*args)`` computed once, on the main process, and sent to every rank."""
    result = [score(*args) if dist.is_main_process() else None]
    dist.broadcast_object_list(result)
    return result[0]
