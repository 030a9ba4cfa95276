"""Turn one evaluation into a results record (params, FLOPs, throughput, provenance)."""
import torch

from harness.flops import count_flops
from harness.results import ResultRecord, append_record, config_hash, git_revision


def image_encoder_gflops(model) -> float:
    """GFLOPs of one image through the model's image encoder at its resolution."""
    encoder = model.visual_encoder
    size = encoder.image_size
    device = encoder.cls_token.device
    image = torch.zeros(1, 3, size, size, device=device)
    return count_flops(encoder, image) / 1e9


def record_evaluation(ctx, stage, model, result: dict, params: int,
                      wall_time_s: float) -> ResultRecord:
    """Append the record of ``stage``'s evaluation ``result`` to the variant's results file.

    ``result`` is a task evaluator's output: ``metrics`` (required), optional ``throughput``,
    ``per_sample`` (per-item scores kept for paired-bootstrap significance tests) and
    ``unavailable`` (metric -> why it could not be computed; leaderboards list these).
    """
    extra = dict(stage=stage.name, flops_scope='image encoder, one image')
    for key in ('per_sample', 'unavailable'):
        if result.get(key):
            extra[key] = dict(result[key])
    record = ResultRecord(
        experiment=ctx.experiment, variant=ctx.variant, task=stage.task,
        dataset=stage.dataset_name, split=stage.split, metrics=dict(result['metrics']),
        params=params, flops=image_encoder_gflops(model),
        throughput=dict(result.get('throughput', {})), seed=ctx.seed,
        config_hash=config_hash(ctx.cfg), git_revision=git_revision(), device=ctx.device,
        wall_time_s=wall_time_s, extra=extra)
    append_record(ctx.work_dir, record)
    return record
