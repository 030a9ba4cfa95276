"""NoCaps (Agrawal et al. 2019): zero-shot captioning of novel objects, scored per domain.

BLIP evaluates its COCO-fine-tuned captioner on NoCaps without further training (beam 3,
max length 20, min length 5, repetition penalty 1.1: ``eval_nocaps.py``). Captions are
generated (and cached, resumed, sharded) by :func:`tasks.caption.evaluate.caption_dataset`.

Scores follow the NoCaps evaluation server: CIDEr and SPICE of each domain (in-domain:
only COCO classes; near-domain: COCO and novel classes; out-domain: only novel classes)
are computed on that domain's images alone (CIDEr's document frequencies included), and
``overall`` on every image. The test split has no public captions: its result file
(``[{"image_id", "caption"}]``, written for every split) goes to the server.
"""
import json
from pathlib import Path
from typing import Optional

from mmengine import dist

from harness.core.files import atomic_write_text
from harness.core.registry import TASKS
from harness.core.task_result import TIMES_100, TaskResult, metrics_in

from ..batch_inference import on_main_process
from ..metrics.caption import captions_by_image, load_coco_references, score_captions
from .evaluate import caption_dataset
from .nocaps_dataset import DOMAINS, load_nocaps_ground_truth

NOCAPS_DECODING = dict(repetition_penalty=1.1)  # on top of beam 3, max 20, min 5
NOCAPS_METRICS = ('CIDEr', 'SPICE')
OVERALL = 'overall'
SUBSETS = (*DOMAINS, OVERALL)


def metric_name(subset: str, metric: str) -> str:
    """The name a subset's metric is recorded under, e.g. ``'out-domain_CIDEr'``."""
    return f'{subset}_{metric}'


def score_nocaps(gt_file, predictions: list, metrics=NOCAPS_METRICS) -> TaskResult:
    """Per-domain and overall scores (×100) of ``[{"image_id", "caption"}]`` predictions.

    Each domain is scored on its own predicted images, as the NoCaps server does; only
    predicted images are scored. Per-image scores are kept for ``overall_CIDEr`` (its
    corpus value is their mean); ``counts`` holds the number of scored images per domain.
    """
    gt_file = Path(gt_file)
    domain_of = {image['id']: image['domain']
                 for image in load_nocaps_ground_truth(gt_file)['images']}
    references = load_coco_references(str(gt_file))
    captions = captions_by_image(predictions)
    unknown = [image_id for image_id in captions if image_id not in domain_of]
    if unknown:
        raise ValueError(f'{len(unknown)} predicted image ids are not in {gt_file}, e.g. '
                         f'{unknown[:5]}; caption the images of the same split')
    values, unavailable, per_sample, counts = {}, {}, {}, {}
    for subset in SUBSETS:
        chosen = {i: c for i, c in captions.items() if subset in (OVERALL, domain_of[i])}
        counts[f'{subset} images'] = len(chosen)
        if not chosen:
            unavailable.update({metric_name(subset, m): f'no predicted {subset} images'
                                for m in metrics})
            continue
        scores = score_captions(references, chosen, metrics)
        values.update({metric_name(subset, m): 100.0 * v for m, v in scores.scores.items()})
        unavailable.update({metric_name(subset, m): reason
                            for m, reason in scores.unavailable.items()})
        if subset == OVERALL and 'CIDEr' in scores.per_image:
            per_sample[metric_name(OVERALL, 'CIDEr')] = {
                str(i): 100.0 * v for i, v in scores.per_image['CIDEr'].items()}
    return TaskResult(metrics=metrics_in(values, TIMES_100), per_sample=per_sample,
                      unavailable=unavailable, counts=counts)


def no_ground_truth(metrics, result_file: str) -> TaskResult:
    """A result whose every metric is unavailable because the split has no public captions."""
    reason = (f'no public ground truth for this split; submit {result_file} (in the '
              'stage work dir) to the NoCaps evaluation server')
    return TaskResult(metrics={}, unavailable={metric_name(s, m): reason
                                               for s in SUBSETS for m in metrics})


def write_result_file(path: Path, predictions: list) -> None:
    """Atomically write the file the NoCaps server takes: ``[{"image_id", "caption"}]``."""
    atomic_write_text(path, json.dumps([{'image_id': p['image_id'], 'caption': p['caption']}
                                        for p in predictions]))


@TASKS.register_module(name='nocaps')
def evaluate_nocaps(model, dataset, *, device='cpu', work_dir=None, cache_key=None,
                    batch_size=32, num_workers=0, decoding: Optional[dict] = None,
                    save_every=10, seed=0, metrics=NOCAPS_METRICS,
                    autocast_dtype: Optional[str] = None,
                    weights_dtype: Optional[str] = None) -> TaskResult:
    """Caption every image of a :class:`NoCapsEvalDataset`; score it when it has ground truth.

    Args:
        model: a BLIP model with a text decoder (``generate_captions`` is used).
        dataset: a ``NoCapsEvalDataset`` (``gt_file`` None for the test split).
        decoding: changes to BLIP's NoCaps decoding (beam 3, max 20, min 5, repetition
            penalty 1.1).
        metrics: caption metric families scored per domain (``CIDEr``, ``SPICE``...).
        autocast_dtype, weights_dtype: the precision, as the ``caption`` task's.

    Returns:
        A :class:`TaskResult`: ``<domain>_<metric>`` ×100 for the three domains and
        ``overall`` (or every one unavailable, for the test split), per-image
        ``overall_CIDEr``, images per domain in ``counts``, the captions in
        ``outputs['predictions']`` and the server's result file in
        ``outputs['result_file']`` (when there is a ``work_dir``).
    """
    predictions, throughput = caption_dataset(
        model, dataset, device=device, work_dir=work_dir, cache_key=cache_key,
        batch_size=batch_size, num_workers=num_workers,
        decoding=dict(NOCAPS_DECODING, **(decoding or {})), save_every=save_every, seed=seed,
        autocast_dtype=autocast_dtype, weights_dtype=weights_dtype)
    result_name = f'{dataset.ann_file.stem}_result.json'
    if dataset.gt_file:
        result = on_main_process(score_nocaps, dataset.gt_file, predictions, metrics)
    else:
        result = no_ground_truth(metrics, result_name)
    if work_dir:
        result.outputs['result_file'] = str(Path(work_dir) / result_name)
        if dist.is_main_process():
            write_result_file(Path(work_dir) / result_name, predictions)
    result.throughput = throughput
    result.counts = {'images': len(predictions), **result.counts}
    result.outputs['predictions'] = predictions
    return result
