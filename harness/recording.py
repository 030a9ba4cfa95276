"""Turn one evaluation into a results record (params, FLOPs, throughput, provenance)."""
from typing import Optional

import torch

from harness.core.task_result import TaskResult
from harness.flops import count_flops
from harness.results import ResultRecord, append_record, config_hash, git_revision

FLOPS_SCOPE = 'image encoder, one image at the model\'s input size (multiply-adds)'


def image_encoder_gflops(model) -> float:
    """GFLOPs of one image through ``model.encode_image`` at the model's input size."""
    device = next(model.parameters()).device
    image = torch.zeros(1, 3, model.image_size, model.image_size, device=device)
    return count_flops(model.encode_image, image) / 1e9


def record_evaluation(ctx, stage, model, result: TaskResult, params: int,
                      wall_time_s: float, load: Optional[dict] = None,
                      init: Optional[dict] = None) -> ResultRecord:
    """Append the record of ``stage``'s evaluation ``result`` to the variant's results file.

    The record keeps the metric values with their units and directions, the per-sample
    scores (for paired significance tests), what could not be computed and why, what
    was evaluated (``counts``), the task's trivial-answerer levels (``baselines``, with
    ``baseline_basis`` and per-sample ``baseline_per_sample``), how much of the model its
    checkpoint filled (``load``: ``{'loaded', 'expected', 'strict', 'source', 'kind'}``, see
    ``EvaluateStage``), the weights its training started from (``init``: per part its
    ``type`` and, for files, ``path``, ``sha256`` and the load report's counts) and, for a
    smoke run, the item limit (``limit``).
    """
    extra = dict(stage=stage.name, flops_scope=FLOPS_SCOPE)
    if getattr(stage, 'limit', None) is not None:  # a smoke run on the first N items
        extra['limit'] = stage.limit
    if load is not None:
        extra['load'] = dict(load)
    if init:
        extra['init'] = dict(init)
    for key in ('per_sample', 'unavailable', 'counts', 'baselines', 'baseline_per_sample'):
        if getattr(result, key):
            extra[key] = dict(getattr(result, key))
    if result.baselines:
        extra['baseline_basis'] = result.baseline_basis
    record = ResultRecord(
        experiment=ctx.experiment, variant=ctx.variant, task=stage.task,
        dataset=stage.dataset_name, split=stage.split, metrics=result.values(),
        units=result.units(), higher_is_better=result.directions(),
        params=params, flops=image_encoder_gflops(model),
        throughput=dict(result.throughput), seed=ctx.seed,
        config_hash=config_hash(ctx.cfg), git_revision=git_revision(), device=ctx.device,
        wall_time_s=wall_time_s, extra=extra)
    append_record(ctx.work_dir, record)
    return record
