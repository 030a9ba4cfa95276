"""Read throughput of pre-training data: WebDataset tar shards vs loose image files.

The same JPEG images and captions are written twice into a temporary folder: as loose
files with a BLIP ``{image, caption}`` JSON file (read by ``ImageTextPairDataset``) and as
tar shards (read by ``WebShardDataset``). Both are read through a DataLoader with the same
transform (JPEG decode + resize to ``--size``, no augmentation), shuffled, in the same
process, and the rates (samples/s) are printed with their ratio. Each reader runs once to
warm the page cache, then is timed; so this measures per-sample overhead (file opens vs
sequential tar reads), not cold-disk or network reads, where shards gain more.

Run from the repository root::

    python -m benchmarks.bench_shards --samples 2000 --workers 2
"""
import argparse
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import DataLoader

from tasks.datasets.image_text import ImageTextPairDataset
from tasks.datasets.tar_shards import json_member, write_shard
from tasks.datasets.web_shards import WebShardDataset


def jpeg(rng: np.random.Generator, side: int) -> bytes:
    """A ``side``-pixel JPEG of smooth random colour (compresses like a photo, not noise)."""
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize((side, side), Image.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format='JPEG', quality=90)
    return buffer.getvalue()


def write_both(root: Path, samples: int, side: int, shard_size: int) -> None:
    """The same pairs as loose files + ``pairs.json`` and as ``shards/NNNNN.tar``."""
    rng = np.random.default_rng(0)
    (root / 'images').mkdir()
    records, shard = [], []
    for index in range(samples):
        data, caption = jpeg(rng, side), f'a picture number {index}'
        (root / 'images' / f'{index:08d}.jpg').write_bytes(data)
        records.append(dict(image=f'images/{index:08d}.jpg', caption=caption))
        shard.append((f'{index:08d}', {'jpg': data, 'txt': caption.encode(),
                                       'json': json_member(dict(caption=caption))}))
        if len(shard) == shard_size or index == samples - 1:
            write_shard(root / 'shards' / f'{index // shard_size:05d}.tar', shard)
            shard = []
    (root / 'pairs.json').write_text(json.dumps(records))


def rate(dataset, batch_size: int, workers: int, shuffle: bool) -> float:
    """Samples per second of one pass of a DataLoader over ``dataset``."""
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, shuffle=shuffle)
    started, count = time.perf_counter(), 0
    for batch in loader:
        count += len(batch['text'])
    return count / (time.perf_counter() - started)


def main(argv=None) -> None:
    """Write the data, time both readers (warm), print samples/s and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--samples', type=int, default=2000)
    parser.add_argument('--side', type=int, default=256, help='stored JPEG side (pixels)')
    parser.add_argument('--size', type=int, default=224, help='model input side')
    parser.add_argument('--shard-size', type=int, default=500)
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=2, help='timed passes (best is kept)')
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_both(root, args.samples, args.side, args.shard_size)
        loose = ImageTextPairDataset(root, 'pairs.json', image_size=args.size, train=False)
        shards = WebShardDataset(root, 'shards/*.tar', image_size=args.size, train=False,
                                 shuffle_buffer=1000)
        rates = {}
        for name, dataset, shuffle in (('loose files', loose, True),
                                       ('tar shards', shards, False)):
            rate(dataset, args.batch_size, args.workers, shuffle)  # warm the page cache
            rates[name] = max(rate(dataset, args.batch_size, args.workers, shuffle)
                              for _ in range(args.repeats))
        for name, value in rates.items():
            print(f'{name:12s} {value:8.1f} samples/s')
        print(f'shards / loose files: {rates["tar shards"] / rates["loose files"]:.2f}x '
              f'({args.samples} JPEGs of {args.side}px -> {args.size}px, '
              f'{args.workers} workers, batch {args.batch_size})')


if __name__ == '__main__':
    main()
