"""CapFilt's bootstrapped corpus written as WebDataset shards, which ``WebShardDataset`` reads.

Input shard ``s`` of the web corpus gives output shard ``corpus_shards/NNNNN.tar`` (written
by rank ``s % world_size``, each shard atomically) holding its kept web pairs, then its
kept synthetic pairs (samples ``<key>_web`` / ``<key>_syn``); the human pairs go to
``human_NNNNN.tar`` (main process). Every sample's ``json`` member gives ``source``
(``human``, ``web`` or ``synthetic``), ``p_match`` (the filter's score; null for human
pairs), ``url`` (the image's name in the JSON corpus) and ``caption``. Same scores and
threshold give the same pairs as ``corpus.json``, only grouped by shard.
"""
from pathlib import Path
from typing import List, Sequence

from mmengine.dist import barrier, get_dist_info, is_main_process

from ..datasets.tar_shards import json_member, write_shard
from ..sharding import blocks_of_sizes
from .corpus import is_kept

CORPUS_SHARD_FOLDER = 'corpus_shards'
HUMAN_SHARD_SIZE = 1000
SUFFIX = dict(web='web', synthetic='syn')


def _sample(key: str, image: tuple, caption: str, meta: dict) -> tuple:
    """One output sample: image member, ``txt`` caption, ``json`` metadata."""
    ext, data = image
    return key, {ext: data, 'txt': caption.encode(),
                 'json': json_member(dict(meta, caption=caption))}


def write_corpus_shards(folder: Path, dataset, human: Sequence[dict], scores: Sequence[dict],
                        threshold: float) -> List[str]:
    """Write the corpus as shards under ``folder``; every rank returns all their paths.

    Args:
        dataset: the :class:`.shard_images.WebShardImageDataset` that was filtered.
        human: the human pairs (``{image, caption}``, images relative to the data root).
        scores: the filter's scored pairs (``source``, ``record``, ``caption``, ``p_match``).
        threshold: the filter's keep threshold.
    """
    folder = Path(folder) / CORPUS_SHARD_FOLDER
    rank, world_size = get_dist_info()
    kept = [score for score in scores if is_kept(score, threshold)]
    for block in blocks_of_sizes(dataset.shard_sizes, rank, world_size):
        samples = [_sample(f'{dataset.members[s["record"]][1]}_{SUFFIX[s["source"]]}',
                           dataset.image_bytes(s['record']), s['caption'],
                           dict(source=s['source'], p_match=s['p_match'], url=s['image']))
                   for source in SUFFIX for s in kept
                   if s['source'] == source and block.start <= s['record'] < block.stop]
        write_shard(folder / f'{block.index:05d}.tar', samples)
    human_paths = [folder / f'human_{start // HUMAN_SHARD_SIZE:05d}.tar'
                   for start in range(0, len(human), HUMAN_SHARD_SIZE)]
    if is_main_process():
        for path, start in zip(human_paths, range(0, len(human), HUMAN_SHARD_SIZE)):
            samples = [_sample(f'human{index:09d}',
                               (Path(pair['image']).suffix.lstrip('.').lower(),
                                dataset.resolve(pair['image']).read_bytes()),
                               pair['caption'], dict(source='human', p_match=None,
                                                     url=pair['image']))
                       for index, pair in enumerate(human[start:start + HUMAN_SHARD_SIZE],
                                                    start)]
            write_shard(path, samples)
    barrier()
    return [str(path) for path in human_paths] + \
        [str(folder / f'{index:05d}.tar') for index in range(len(dataset.shard_sizes))]
