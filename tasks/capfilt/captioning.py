"""CapFilt's captioner: one synthetic caption per web image, sharded and resumable.

Nucleus sampling draws from a generator seeded per shard (from the run's seed and the
shard's index), so the captions do not depend on interruptions or the number of ranks.
"""
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from harness.core.registry import TASKS
from harness.core.task_result import TaskResult

from ..precision import at_precision, numeric_precision
from ..sharding import Block
from .shards import run_sharded

# BLIP's CapFilt samples with nucleus p=0.9; lengths as BLIP's captioning (DESIGN §4).
# length_normalization (beam search only) is spelled out so that shards' job hash holds it.
DEFAULT_DECODING = dict(method='nucleus', top_p=0.9, num_beams=3, max_length=20, min_length=5,
                        length_normalization='blip')


def shard_seed(seed: int, shard: int) -> int:
    """The sampling seed of one shard: independent streams per (run seed, shard)."""
    return int(np.random.SeedSequence([seed, shard]).generate_state(1)[0])


@torch.no_grad()
def caption_shard(model, dataset, block: Block, decoding: dict, batch_size: int, seed: int,
                  device: str, num_workers: int = 0) -> List[dict]:
    """``[{'image', 'caption'}]`` for the images of one shard, in image order."""
    generator = torch.Generator(device=device).manual_seed(shard_seed(seed, block.index))
    loader = DataLoader(Subset(dataset, block.items), batch_size=batch_size, shuffle=False,
                        num_workers=num_workers)
    records = []
    for batch in loader:
        captions = model.generate_captions(batch['image'].to(device), generator=generator,
                                           **decoding)
        records += [dict(image=dataset.images[index], caption=caption)
                    for index, caption in zip(batch['index'].tolist(), captions)]
    return records


@TASKS.register_module(name='capfilt_caption')
def caption_web_images(model, dataset, *, device: str = 'cpu', work_dir=None,
                       cache_key: Optional[str] = None, decoding: Optional[dict] = None,
                       batch_size: int = 32, shard_size: int = 512, seed: int = 0,
                       num_workers: int = 0, autocast_dtype: Optional[str] = None,
                       weights_dtype: Optional[str] = None) -> TaskResult:
    """Caption every image of a :class:`WebImageDataset` once with a captioner.

    Args:
        model: a BLIP model with a text decoder (fine-tuned captioner).
        dataset: the web images.
        work_dir: the shards go to ``<work_dir>/shards``.
        cache_key: identifies the checkpoint; shards of another checkpoint are discarded.
        decoding: options of :func:`backbones.generation.generate_captions` (default
            nucleus, top_p 0.9, max length 20, min length 5; ``method='beam'`` uses 3 beams).
        shard_size: images per shard (the unit of resumption and of rank splitting); a
            dataset read from tar shards (``shard_sizes``) is cut at its input shards.
        seed: base seed of the per-shard sampling generators.
        autocast_dtype, weights_dtype: the precision (:func:`tasks.precision.at_precision`;
            both None: the model's own); shards of another precision are discarded.

    Returns:
        A :class:`TaskResult` without metrics: ``outputs['captions']`` holds one
        ``{'image', 'caption'}`` per image, in dataset order.
    """
    decoding = dict(DEFAULT_DECODING, **(decoding or {}))
    with at_precision(model, device, autocast_dtype, weights_dtype) as model:
        job = dict(task='capfilt_caption', cache_key=cache_key, decoding=decoding,
                   batch_size=batch_size, seed=seed,
                   precision=numeric_precision(model, torch.device(device)))
        captions, throughput = run_sharded(
            Path(work_dir) / 'shards', job, len(dataset), shard_size,
            desc='synthetic captions', block_sizes=getattr(dataset, 'shard_sizes', None),
            process_shard=lambda block: caption_shard(model, dataset, block, decoding,
                                                      batch_size, seed, device, num_workers))
    return TaskResult(metrics={}, throughput=throughput, counts={'images': len(dataset)},
                      outputs={'captions': captions})
