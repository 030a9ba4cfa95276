"""Evaluation images delivered to the model's device: PIL in DataLoader workers vs device decode.

Writes ``--count`` photo-like JPEGs (``--width`` x ``--height``, COCO's 640x480 by default)
and a retrieval annotation file into a temporary folder, then measures, in one process, how
many images per second arrive on ``--device`` as model-ready batches (float32
``[B, 3, S, S]``, normalised: what the ViT takes) when read through
``RetrievalEvalDataset``:

* ``decode='cpu'``: PIL decodes, BLIP's eval transform resizes (bicubic) and normalises in
  0/2/4/8 DataLoader workers (``--workers``); each batch is moved to the device;
* ``decode='device'``: the workers (``--device-workers``) only read the files; each batch
  is decoded (``torchvision.io.decode_jpeg``: nvJPEG on CUDA), resized and normalised on
  the device by :func:`tasks.datasets.device_decode.images_on_device`.

Every loader makes one untimed pass (workers start, caches warm; workers persist), then
``--repeats`` timed passes, the best kept. Files sit in the page cache: this measures
decoding and resizing, not disk reads. The device rows' notes give how far their pixels
are from PIL's on one batch, in 8-bit levels.

    python -m benchmarks.bench_decode --device cuda
    python -m benchmarks.bench_decode --device cpu --count 32 --workers 0 2
"""
import argparse
import io
import json
import tempfile
import time
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from benchmarks.report import Row, environment, format_row, write_json
from tasks.datasets import RetrievalEvalDataset
from tasks.datasets.device_decode import images_on_device

MEASURE = 'eval images to device'
NOISE = 20  # pixel noise (std, 8-bit levels): 640x480 JPEGs of ~155 kB, as COCO's average


def photo_like_jpeg(rng: np.random.Generator, width: int, height: int) -> bytes:
    """A JPEG (quality 90) of smooth random colour with fine noise, compressing like a photo."""
    coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC))
    pixels = smooth + rng.normal(0, NOISE, smooth.shape)
    buffer = io.BytesIO()
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(buffer, 'JPEG', quality=90)
    return buffer.getvalue()


def write_images(root: Path, count: int, width: int, height: int) -> int:
    """``count`` JPEGs under ``root/images`` and ``root/test.json`` listing them; total bytes."""
    rng = np.random.default_rng(0)
    (root / 'images').mkdir()
    records, total = [], 0
    for index in range(count):
        data = photo_like_jpeg(rng, width, height)
        (root / 'images' / f'{index:06d}.jpg').write_bytes(data)
        records.append(dict(image=f'images/{index:06d}.jpg', caption=[f'picture {index}']))
        total += len(data)
    (root / 'test.json').write_text(json.dumps(records))
    return total


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (timings must include it)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def deliver(loader: DataLoader, device: torch.device) -> int:
    """One pass: every batch as model input on ``device``; the number of images."""
    count = 0
    for batch in loader:
        count += len(images_on_device(batch['image'], device))
    sync(device)
    return count


def images_per_second(dataset, device: torch.device, batch_size: int, workers: int,
                      repeats: int) -> float:
    """Best rate of ``repeats`` timed passes after one untimed pass."""
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers,
                        collate_fn=dataset.collate_fn, pin_memory=device.type == 'cuda',
                        persistent_workers=workers > 0)
    deliver(loader, device)
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        count = deliver(loader, device)
        best = max(best, count / (time.perf_counter() - started))
    return best


def level_difference(pil: RetrievalEvalDataset, on_device: RetrievalEvalDataset,
                     count: int, device: torch.device) -> str:
    """Max and mean |difference| of the two paths' first ``count`` images, in 8-bit levels."""
    indices = range(min(count, len(pil)))
    expected = images_on_device(pil.collate_fn([pil[i] for i in indices])['image'], device)
    got = images_on_device(on_device.collate_fn([on_device[i] for i in indices])['image'],
                           device)
    std = torch.tensor(on_device.image_format.std, device=device).view(1, -1, 1, 1)
    levels = (got - expected).abs() * std * 255
    return f'vs PIL: max {levels.max().item():.1f}, mean {levels.mean().item():.3f} levels'


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--count', type=int, default=None,
                        help='images written and read (default: 2000 on CUDA, 32 on the CPU)')
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--size', type=int, default=384, help='model input side')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--workers', type=int, nargs='+', default=[0, 2, 4, 8],
                        help='DataLoader workers of the PIL path, one row each')
    parser.add_argument('--device-workers', type=int, nargs='+', default=[0, 2],
                        help='DataLoader workers (file reads only) of the device path')
    parser.add_argument('--repeats', type=int, default=2, help='timed passes (best is kept)')
    parser.add_argument('--json', type=Path, default=None, help='also write the rows here')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> List[Row]:
    """Write the images, time every loader, print the table with ratios; return the rows."""
    args = parse_args(argv)
    device = torch.device(args.device)
    count = args.count or (2000 if device.type == 'cuda' else 32)
    env = environment(device, None)
    rows: List[Row] = []
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        total = write_images(root, count, args.width, args.height)
        pil = RetrievalEvalDataset(root, 'test.json', image_size=args.size)
        on_device = RetrievalEvalDataset(root, 'test.json', image_size=args.size,
                                         decode='device')
        settings = (f'{count} JPEGs {args.width}x{args.height} ({total / count / 1e3:.0f} kB) '
                    f'-> {args.size} px, batch {args.batch_size}')
        difference = level_difference(pil, on_device, args.batch_size, device)
        print(f'{env["device"]}: torch {env["torch"]}, {settings}', flush=True)
        runs = [(f'PIL on CPU, {w} workers', pil, w) for w in args.workers] + \
            [(f'decode on {device.type}, {w} workers', on_device, w)
             for w in args.device_workers]
        for name, dataset, workers in runs:
            rate = images_per_second(dataset, device, args.batch_size, workers, args.repeats)
            notes = difference if dataset is on_device else ''
            rows.append(Row(MEASURE, name, rate, 'img/s', settings, 'fp32', notes=notes))
            print(format_row(rows[-1]), flush=True)
    print_ratios(rows, len(args.workers))
    if args.json:
        write_json(args.json, rows, env)
    return rows


def print_ratios(rows: List[Row], pil_rows: int) -> None:
    """Each rate against the PIL path with no workers and with its best worker count."""
    base, best = rows[0].value, max(row.value for row in rows[:pil_rows])
    print(f'\n{"loader":<34} {"img/s":>10} {"x PIL 0 workers":>16} {"x best PIL":>11}')
    for row in rows:
        print(f'{row.implementation:<34} {row.value:10.1f} {row.value / base:16.2f} '
              f'{row.value / best:11.2f}')


if __name__ == '__main__':
    main()
