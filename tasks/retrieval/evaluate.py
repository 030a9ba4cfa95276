"""BLIP's image/video–text retrieval protocol: ITC features → top-k → ITM re-rank → recall.

1. ITC features of every image (video) and text; ``sims = image_feats @ text_feats.T``.
2. Every image is paired with its top-k texts, every text with its top-k images; each pair
   scores ``ITM match logit + sim``, every other entry -100 (:mod:`.scores`).
3. Recall metrics as BLIP's ``itm_eval`` (:func:`tasks.metrics.retrieval.retrieval_metrics`).

The ITM work is grouped by image for both directions (:mod:`.candidates`), so each image's
cross-attention keys/values are computed once. Under ``torch.distributed`` the images (and
for ITC, the texts) are sharded by fixed blocks (:mod:`.sharding`); every rank re-ranks the
pairs of its own images, i.e. its rows of ``i2t`` and its columns of ``t2i``, and one
max-reduction gives every rank the full matrices. With a ``work_dir`` the features, each
finished block of images and the final matrices are cached (:mod:`.cache`): an interrupted
run resumes at the first unfinished block, and a finished one is not recomputed.
"""
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import torch
from mmengine import dist
from mmengine.logging import print_log

from backbones.compiled_layers import layers_compiled
from harness.core.registry import TASKS
from harness.core.task_result import PERCENT, TaskResult, metrics_in

from ..metrics.retrieval import RECALL_AT, best_ranks, retrieval_metrics
from ..progress import ProgressMeter
from ..cache_keys import results_key
from ..precision import at_precision, numeric_precision
from .cache import RetrievalCache, evaluation_digest
from .candidates import plan_candidates
from .features import extract_text_features, extract_visual_features, tokenize_texts
from .rerank import rerank_block
from ..sharding import all_ranks_agree, blocks_of_rank, gather_rows, split_into_batches
from .scores import RetrievalScores, ScoreAssembler


def _compute_features(model, dataset, image_blocks, *, batch_size: int, device: torch.device,
                      num_workers: int, max_text_length: int):
    """Features of the whole split (gathered over ranks) and this rank's image tokens."""
    rank, world_size = dist.get_dist_info()
    tokens = tokenize_texts(model, dataset.texts, max_text_length)
    visual = extract_visual_features(model, dataset, split_into_batches(image_blocks, batch_size),
                                     device, num_workers)
    text_blocks = blocks_of_rank(len(dataset.texts), batch_size, rank, world_size)
    text_index, text_feats = extract_text_features(
        model, tokens, split_into_batches(text_blocks, batch_size), device)
    embed_dim = model.embed_dim
    image_feats = gather_rows(visual.index, visual.feats, len(dataset), embed_dim)
    text_feats = gather_rows(text_index, text_feats, len(dataset.texts), embed_dim)
    with torch.autocast(device.type, enabled=False):
        sims = (image_feats.to(device) @ text_feats.to(device).T).cpu()
    features = dict(image_feats=image_feats, text_feats=text_feats, sims=sims, **tokens)
    return features, visual


def _rerank_split(model, dataset, *, k: int, batch_size: int, itm_batch_size: int,
                  device: torch.device, cache: RetrievalCache, num_workers: int,
                  max_text_length: int, block_size: int,
                  itm_packing: bool = False) -> RetrievalScores:
    """Features (cached or computed), then this rank's ITM blocks, then the gathered scores."""
    rank, world_size = dist.get_dist_info()
    image_blocks = blocks_of_rank(len(dataset), block_size, rank, world_size)
    finished = {block.index: cache.load_block(block.index) for block in image_blocks}
    pending = [block for block in image_blocks if finished[block.index] is None]
    features = cache.load_features()
    if not all_ranks_agree(features is not None):
        features, visual = _compute_features(
            model, dataset, image_blocks, batch_size=batch_size, device=device,
            num_workers=num_workers, max_text_length=max_text_length)
        if dist.is_main_process():
            cache.save_features(features)
        dist.barrier()  # no block may be cached before the features it was planned from
    else:
        visual = extract_visual_features(model, dataset, split_into_batches(pending, batch_size),
                                         device, num_workers)

    plan = plan_candidates(features['sims'].to(device), k)
    assembler = ScoreAssembler(features['sims'], plan)
    tokens = {key: features[key] for key in ('input_ids', 'attention_mask')}
    progress = ProgressMeter(sum(plan.num_pairs(block.items) for block in pending),
                             'retrieval ITM re-ranking', unit='pairs')
    for block in image_blocks:
        pairs = finished[block.index]
        if pairs is None:
            pairs = rerank_block(model, block.items, visual.rows_of(block.items), plan, tokens,
                                 itm_batch_size, device, progress, itm_packing)
            cache.save_block(block.index, pairs)
        assembler.add(**pairs)
    scores = assembler.gather()
    if visual.rate:
        scores.throughput[f'{visual.unit}/s per process'] = visual.rate
    if progress.done:
        scores.throughput['ITM pairs/s per process'] = progress.rate
    return scores


def compute_retrieval_scores(model, dataset, *, k: int, batch_size: int = 64,
                             itm_batch_size: int = 256, device: Union[str, torch.device] = 'cpu',
                             work_dir: Optional[Union[str, Path]] = None,
                             cache_key: Optional[str] = None, num_workers: int = 0,
                             max_text_length: int = 35, block_size: int = 64,
                             itm_packing: bool = False,
                             compile_layers: Union[bool, dict] = False) -> RetrievalScores:
    """BLIP's re-ranked ``i2t``/``t2i`` score matrices of a retrieval split (every rank gets them).

    Args:
        model: a :class:`harness.core.model_api.VisionLanguageModel`.
        dataset: items ``{'image', 'image_index'}`` or ``{'video', 'video_index'}``, with
            attributes ``texts``, ``txt2img``, ``img2txt`` (and optionally ``item_unit``,
            the items' name in progress lines and rates).
        k: ITM re-ranking depth (256 COCO, 128 Flickr30K/MSRVTT), capped at the candidates.
        batch_size: images (texts) per feature-extraction batch.
        itm_batch_size: texts per ITM forward pass (all on one image). Below ``k`` (an
            image's candidates in several passes), or with ``itm_packing``, the scores are
            cached per value: other passes round differently.
        device: where the model runs.
        work_dir: cache folder root; None caches nothing.
        cache_key: the model's identity in the cache (e.g. a checkpoint hash); default: a
            hash of the model's weights (:func:`tasks.cache_keys.model_fingerprint`).
        num_workers: data loader workers for the images.
        max_text_length: text token limit (35 for retrieval).
        block_size: images per re-ranking block (the unit of sharding and of resuming).
        itm_packing: fill each ITM forward pass with ``itm_batch_size`` texts of several
            images, in runs of 64 per image (:mod:`tasks.retrieval.rerank`; a pass holds
            ``itm_batch_size`` rounded down to a multiple of 64); logits equal up to float
            rounding.
        compile_layers: ``torch.compile`` every ViT block and MED layer for this evaluation
            (True, or a dict of ``torch.compile`` options), then leave the model as it was
            (:func:`backbones.compiled_layers.layers_compiled`). With ``itm_packing`` every
            ITM pass has one shape, so the layers compile a few times, not for every pass.
            Scores equal up to float rounding (kernel fusion); cached apart.
    """
    device = torch.device(device)
    cache = RetrievalCache(None, k, block_size)  # nothing cached without a work dir
    if work_dir is not None:  # the key hashes weights and inputs: only worth it when caching
        digest = evaluation_digest(dataset, max_text_length, numeric_precision(model, device))
        if itm_packing or itm_batch_size < k:
            # passes of another size group the pairs otherwise: the scores are equal up to
            # float rounding, not bit for bit, so they are cached apart (as packed ones are)
            digest += f'-itm{itm_batch_size}'
        if itm_packing:
            digest += '-itm-packed'
        if compile_layers:
            digest += '-compiled'
        cache = RetrievalCache.for_evaluation(work_dir, results_key(model, cache_key, work_dir),
                                              digest, k, block_size)
    scores = cache.load_scores()
    if all_ranks_agree(scores is not None):
        print_log(f'retrieval: reusing the score matrices cached in {cache.root}', logger='current')
        return scores
    was_training = model.training
    model.eval()
    try:
        with layers_compiled(model, compile_layers):
            scores = _rerank_split(model, dataset, k=k, batch_size=batch_size,
                                   itm_batch_size=itm_batch_size, device=device, cache=cache,
                                   num_workers=num_workers, max_text_length=max_text_length,
                                   block_size=block_size, itm_packing=itm_packing)
    finally:
        model.train(was_training)
    if dist.is_main_process():
        cache.save_scores(scores)
    dist.barrier()  # a next call on any rank must find the scores, not half-deleted blocks
    return scores


def scores_at_precision(model, dataset, autocast_dtype: Optional[str] = None,
                        weights_dtype: Optional[str] = None, *,
                        device: Union[str, torch.device] = 'cpu', **options) -> RetrievalScores:
    """:func:`compute_retrieval_scores` at a chosen precision
    (:func:`tasks.precision.at_precision`): under ``torch.autocast`` to ``autocast_dtype``
    (``'bfloat16'``/``'float16'``), or on a copy of the model cast to ``weights_dtype``
    (``'bfloat16'``: every activation in bf16, faster than autocast on GPUs and further from
    float32; cached apart); both None: the model as it is, under the caller's autocast."""
    with at_precision(model, device, autocast_dtype, weights_dtype) as evaluated:
        return compute_retrieval_scores(evaluated, dataset, device=torch.device(device),
                                        **options)


def per_query_recalls(scores: RetrievalScores, img2txt: Sequence[Sequence[int]],
                      txt2img: Sequence[int]) -> Dict[str, Dict[str, float]]:
    """Per-query hits (0 or 100) of every recall metric; each one's mean is the metric.

    ``TR@k`` is keyed by image index, ``IR@k`` by text index (for paired bootstraps).
    """
    text_ranks = best_ranks(scores.i2t.numpy(), img2txt)
    image_ranks = best_ranks(scores.t2i.numpy(), [[image] for image in txt2img])
    per_query = {}
    for name, ranks in (('TR', text_ranks), ('IR', image_ranks)):
        for k in RECALL_AT:
            per_query[f'{name}@{k}'] = {str(query): 100.0 * float(rank < k)
                                        for query, rank in enumerate(ranks)}
    return per_query


@TASKS.register_module(name='retrieval')
def evaluate_retrieval(model, dataset, *, k: int, batch_size: int = 64,
                       itm_batch_size: int = 256, device: Union[str, torch.device] = 'cpu',
                       work_dir: Optional[Union[str, Path]] = None,
                       cache_key: Optional[str] = None, num_workers: int = 0,
                       max_text_length: int = 35, block_size: int = 64,
                       autocast_dtype: Optional[str] = None,
                       weights_dtype: Optional[str] = None,
                       itm_packing: bool = False,
                       compile_layers: Union[bool, dict] = False) -> TaskResult:
    """BLIP's retrieval protocol on a split, as the ``'retrieval'`` task evaluator.

    The arguments are those of :func:`compute_retrieval_scores`, plus ``autocast_dtype``
    (``'bfloat16'``/``'float16'`` to run under ``torch.autocast``) or ``weights_dtype``
    (``'bfloat16'`` to run a copy of the model cast to it); both None: the model's own
    precision (see :func:`scores_at_precision`).

    Returns:
        A :class:`TaskResult`: TR@1/5/10, IR@1/5/10, TR_mean, IR_mean, R_mean in percent,
        per-query hits of each recall (:func:`per_query_recalls`), ``img/s per process``
        and ``ITM pairs/s per process`` (empty when the scores were cached) and the numbers
        of images and texts.
    """
    scores = scores_at_precision(
        model, dataset, autocast_dtype, weights_dtype, k=k, batch_size=batch_size,
        itm_batch_size=itm_batch_size, device=device, work_dir=work_dir, cache_key=cache_key,
        num_workers=num_workers, max_text_length=max_text_length, block_size=block_size,
        itm_packing=itm_packing, compile_layers=compile_layers)
    metrics = retrieval_metrics(scores.i2t, scores.t2i, dataset.img2txt, dataset.txt2img)
    return TaskResult(metrics=metrics_in(metrics, PERCENT),
                      per_sample=per_query_recalls(scores, dataset.img2txt, dataset.txt2img),
                      throughput=dict(scores.throughput),
                      counts={'images': len(dataset), 'texts': len(dataset.texts)})
