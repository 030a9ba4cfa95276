"""COCO-protocol caption evaluation: generate for every image, score with pycocoevalcap.

Predictions are written to the work dir as they are produced (atomically, every few
batches), so an interrupted evaluation resumes where it stopped and a finished one is
reused when re-run with the same checkpoint and decoding settings.
"""
import hashlib
import json
import time
from pathlib import Path
from typing import Optional

import torch
from torch.utils.data import DataLoader, Subset

from harness.registry import TASKS
from harness.results import atomic_write_text
from tasks.metrics.caption import coco_caption_metrics
from tasks.progress import ProgressMeter

DEFAULT_DECODING = dict(method='beam', num_beams=3, max_length=20, min_length=5)
# Metrics whose corpus score is the mean of per-image scores, so a paired bootstrap over
# images is valid for them (corpus BLEU and METEOR are not per-image means).
PER_IMAGE_MEAN_METRICS = ('CIDEr', 'ROUGE-L')


def predictions_path(work_dir: Path, cache_key: Optional[str], decoding: dict) -> Path:
    """Cache file of the predictions of one (checkpoint, decoding) pair."""
    tag = hashlib.sha1(json.dumps([cache_key, decoding], sort_keys=True).encode()).hexdigest()
    return Path(work_dir) / f'captions_{tag[:12]}.json'


def load_cached(path: Path) -> dict:
    """Earlier predictions ``{dataset index: {'image_id', 'caption'}}`` of this cache file."""
    if not path.exists():
        return {}
    try:
        return {int(k): v for k, v in json.loads(path.read_text())['predictions'].items()}
    except (ValueError, KeyError) as error:
        raise ValueError(f'{path} is not a caption prediction cache ({error}); delete it to '
                         f'regenerate the captions') from error


@TASKS.register_module(name='caption')
def evaluate_caption(model, dataset, *, device='cpu', work_dir=None, cache_key=None,
                     batch_size=32, num_workers=0, decoding=None, save_every=10,
                     metrics=('BLEU', 'METEOR', 'ROUGE-L', 'CIDEr', 'SPICE')) -> dict:
    """Caption every image of a ``CaptionEvalDataset`` and score against its ``gt_file``.

    Args:
        model: a BLIP model with a text decoder (``generate_captions`` is used).
        dataset: yields ``{'image', 'image_id'}`` and has ``gt_file``.
        decoding: options of :func:`backbones.generation.generate_captions` (BLIP's
            defaults: beam 3, max length 20, min length 5).
        save_every: write the prediction cache every this many batches.

    Returns:
        ``{'metrics': {BLEU-4: ..., CIDEr: ... (x100)}, 'per_sample': {'CIDEr': {id: s},
        'ROUGE-L': ...},
        'throughput': {'images/s': ...}, 'predictions': [...], 'unavailable': {...}}``.
    """
    from backbones.generation import generate_captions  # noqa: PLC0415
    decoding = dict(DEFAULT_DECODING, **(decoding or {}))
    cache = predictions_path(work_dir or '.', cache_key, decoding) if work_dir else None
    done = load_cached(cache) if cache else {}
    remaining = [i for i in range(len(dataset)) if i not in done]
    loader = DataLoader(Subset(dataset, remaining), batch_size=batch_size, shuffle=False,
                        num_workers=num_workers)
    progress = ProgressMeter(len(remaining), 'caption generation', unit='images')
    started = time.perf_counter()
    generator = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for batch_number, batch in enumerate(loader):
            captions = generate_captions(model, batch['image'].to(device), generator=generator,
                                         **decoding)
            start = batch_number * batch_size
            for index, image_id, caption in zip(remaining[start:start + len(captions)],
                                                batch['image_id'].tolist(), captions):
                done[index] = dict(image_id=image_id, caption=caption)
            progress.update(len(captions))
            if cache and (batch_number + 1) % save_every == 0:
                save_predictions(cache, done)
    elapsed = time.perf_counter() - started
    if cache:
        save_predictions(cache, done)
    predictions = [done[i] for i in sorted(done)]
    scores = coco_caption_metrics(dataset.gt_file, predictions, metrics)
    return dict(
        metrics={name: 100.0 * value for name, value in scores.scores.items()},
        per_sample={name: {str(k): 100.0 * v for k, v in scores.per_image[name].items()}
                    for name in PER_IMAGE_MEAN_METRICS if name in scores.per_image},
        throughput={'images/s': len(remaining) / elapsed} if remaining else {},
        predictions=predictions,
        unavailable=dict(scores.unavailable))


def save_predictions(path: Path, predictions: dict) -> None:
    """Atomically write the prediction cache."""
    atomic_write_text(path, json.dumps({'predictions': {str(k): v for k, v in predictions.items()}}))
