"""Several processes through torchrun: pre-training, retrieval protocol and CapFilt captioning.

Run once per world size, then merge (issue #21)::

    torchrun --nproc_per_node 1 -m benchmarks.bench_scaling --out /tmp/scaling
    torchrun --nproc_per_node 2 -m benchmarks.bench_scaling --out /tmp/scaling
    python -m benchmarks.bench_scaling --report /tmp/scaling   # scaling rows, Markdown

Each run writes ``world_<N>.json``: the DDP pre-training step rate (BLIP-base ITC+ITM+LM,
224 px, bf16 autocast, ``--train-batch`` images per process), the retrieval protocol
(``compute_retrieval_scores``, packed ITM) on a synthetic split with a digest of its score
matrices, and nucleus captioning of a synthetic web set (``caption_web_images``, shards
split across ranks) with a digest of its captions. ``--report`` prints efficiency
(N-process img/s ÷ N × 1-process img/s), the protocol speed-up, and whether the digests of
the N-process runs equal the 1-process ones. NCCL on CUDA, gloo on the CPU (``--shape tiny``
for a smoke run).
"""
import argparse
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import List, Optional, Sequence

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from benchmarks.models import SHAPES, add_vocab_argument, our_blip
from benchmarks.synthetic import SyntheticSplit, random_captions
from tasks.capfilt.captioning import caption_web_images
from tasks.retrieval import compute_retrieval_scores

def digest(*tensors_or_texts) -> str:
    """A short hash of score matrices (rounded to 1e-3) or caption lists."""
    hasher = hashlib.sha256()
    for item in tensors_or_texts:
        if isinstance(item, torch.Tensor):
            hasher.update(torch.round(item.float().cpu() * 1000).to(torch.int64).numpy().tobytes())
        else:
            hasher.update(json.dumps(item).encode())
    return hasher.hexdigest()[:16]


def timed(device: torch.device, run):
    """``run()``'s result and its seconds, all ranks synchronised before and after."""
    dist.barrier()
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    result = run()
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    dist.barrier()
    return result, time.perf_counter() - started


def pretrain_rate(args, device: torch.device, world: int) -> dict:
    """Images/s of DDP pre-training steps over all processes (median-free: total time of
    ``--train-steps`` steps after two warm-up steps)."""
    shape = SHAPES[args.shape]
    size = 224 if args.shape == 'base' else shape.image_size
    torch.manual_seed(0)
    model = our_blip(shape=args.shape, vocab=args.vocab, image_size=size,
                     queue_size=57600 if args.shape == 'base' else 16).to(device).train()
    ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == 'cuda'
                                  else None)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.05,
                                  fused=device.type == 'cuda')
    texts = random_captions(args.train_batch, seed=dist.get_rank())
    images = torch.randn(args.train_batch, 3, size, size,
                         generator=torch.Generator().manual_seed(dist.get_rank())).to(device)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == 'cuda'):
            losses = ddp(images, dict(text=texts), mode='loss')
        sum(losses.values()).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(2):
        step()
    _, seconds = timed(device, lambda: [step() for _ in range(args.train_steps)])
    memory = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == 'cuda' else None
    return dict(img_per_s=world * args.train_batch * args.train_steps / seconds,
                batch_per_process=args.train_batch, steps=args.train_steps,
                peak_memory_gib=memory)


def protocol_run(args, device: torch.device, work_dir: Path) -> dict:
    """The retrieval protocol end to end; seconds and a digest of both score matrices."""
    shape = SHAPES[args.shape]
    torch.manual_seed(0)
    model = our_blip(('itc', 'itm'), shape=args.shape, vocab=args.vocab,
                     max_text_length=35).to(device).eval()
    dataset = SyntheticSplit(args.protocol_images, shape.image_size)
    k = min(256, len(dataset))
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == 'cuda'):
        scores, seconds = timed(device, lambda: compute_retrieval_scores(
            model, dataset, k=k, batch_size=128 if args.shape == 'base' else 8,
            itm_batch_size=1024 if args.shape == 'base' else 24, device=device,
            work_dir=work_dir / 'protocol', num_workers=args.workers, itm_packing=True))
    return dict(seconds=seconds, images=len(dataset), texts=len(dataset.texts), k=k,
                digest=digest(scores.i2t, scores.t2i))


def captioning_run(args, device: torch.device, work_dir: Path) -> dict:
    """CapFilt's nucleus captioning of a synthetic web set; img/s and a caption digest."""
    shape = SHAPES[args.shape]
    torch.manual_seed(0)
    model = our_blip(('lm',), shape=args.shape, vocab=args.vocab).to(device).eval()
    dataset = SyntheticSplit(args.web_images, shape.image_size, captions_per_image=0)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == 'cuda'):
        result, seconds = timed(device, lambda: caption_web_images(
            model, dataset, device=str(device), work_dir=work_dir / 'captions',
            batch_size=args.caption_batch, shard_size=args.shard_size, seed=0,
            num_workers=args.workers))
    captions = result.outputs['captions']
    return dict(seconds=seconds, img_per_s=len(dataset) / seconds, images=len(dataset),
                digest=digest([record['caption'] for record in captions]))


def measure(args) -> dict:
    """All three measures in this process group; rank 0 writes ``world_<N>.json``."""
    cuda = torch.cuda.is_available() and args.shape == 'base'
    device = torch.device('cuda', int(os.environ.get('LOCAL_RANK', 0))) if cuda \
        else torch.device('cpu')
    if cuda:
        torch.cuda.set_device(device)
        dist.init_process_group('nccl', device_id=device)
    else:
        dist.init_process_group('gloo')
    rank, world = dist.get_rank(), dist.get_world_size()
    results = dict(world_size=world, shape=args.shape, device=torch.cuda.get_device_name(device)
                   if cuda else 'cpu', torch=torch.__version__)
    scratch = Path(args.out) / f'scratch_world_{world}'  # shards and caches, shared by ranks
    if rank == 0:
        shutil.rmtree(scratch, ignore_errors=True)  # a cache left over would skip the work
    dist.barrier()
    for name, run in (('pretrain', lambda: pretrain_rate(args, device, world)),
                      ('protocol', lambda: protocol_run(args, device, scratch)),
                      ('captioning', lambda: captioning_run(args, device, scratch))):
        if name in args.only:
            results[name] = run()
            if rank == 0:
                print(f'[world {world}] {name}: {json.dumps(results[name])}', flush=True)
    if rank == 0:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / f'world_{world}.json').write_text(json.dumps(results, indent=1))
    dist.barrier()
    dist.destroy_process_group()
    return results


def scaling_rows(folder: Path) -> List[str]:
    """Markdown lines comparing every ``world_<N>.json`` in ``folder`` with ``world_1.json``."""
    runs = {json.loads(path.read_text())['world_size']: json.loads(path.read_text())
            for path in sorted(Path(folder).glob('world_*.json'))}
    if 1 not in runs:
        raise SystemExit(f'{folder} has no world_1.json: run with --nproc_per_node 1 first')
    one = runs[1]
    lines = [f'Device: {one["device"]}, torch {one["torch"]}, shape {one["shape"]}.', '',
             '| processes | pre-training img/s | efficiency | protocol s | speed-up | '
             'same scores | captioning img/s | same captions |',
             '|---|---|---|---|---|---|---|---|']
    for world, run in sorted(runs.items()):
        train, protocol, captions = (run.get(name, {}) for name in
                                     ('pretrain', 'protocol', 'captioning'))
        efficiency = train.get('img_per_s', 0) / (world * one['pretrain']['img_per_s']) \
            if train and one.get('pretrain') else None
        speedup = one['protocol']['seconds'] / protocol['seconds'] \
            if protocol and one.get('protocol') else None
        lines.append('| ' + ' | '.join([
            str(world), f'{train.get("img_per_s", float("nan")):.1f}',
            f'{efficiency:.3f}' if efficiency is not None else '—',
            f'{protocol.get("seconds", float("nan")):.1f}',
            f'{speedup:.2f}×' if speedup is not None else '—',
            str(protocol.get('digest') == one.get('protocol', {}).get('digest')),
            f'{captions.get("img_per_s", float("nan")):.1f}',
            str(captions.get('digest') == one.get('captioning', {}).get('digest'))]) + ' |')
    return lines


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', type=Path, default=Path('/tmp/scaling'),
                        help='folder of world_<N>.json and of the runs\' scratch files')
    parser.add_argument('--report', type=Path, default=None,
                        help='print the scaling table of the world_<N>.json in this folder')
    parser.add_argument('--shape', choices=sorted(SHAPES), default='base')
    parser.add_argument('--only', nargs='+', default=['pretrain', 'protocol', 'captioning'],
                        choices=('pretrain', 'protocol', 'captioning'))
    parser.add_argument('--train-batch', type=int, default=64)
    parser.add_argument('--train-steps', type=int, default=20)
    parser.add_argument('--protocol-images', type=int, default=5000)
    parser.add_argument('--web-images', type=int, default=20000)
    parser.add_argument('--caption-batch', type=int, default=256)
    parser.add_argument('--shard-size', type=int, default=1024)
    parser.add_argument('--workers', type=int, default=0)
    add_vocab_argument(parser)
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Measure under torchrun, or (``--report``) print the merged scaling table."""
    args = parse_args(argv)
    if args.report is not None:
        print('\n'.join(scaling_rows(args.report)))
        return
    measure(args)


if __name__ == '__main__':
    main()
