"""CapFilt's filter: ITM match probabilities of every web and synthetic text, then the corpus.

Every web text and every synthetic text is scored against its own image by the filter's
image-grounded text encoder (softmax of the ITM head, index 1 = match); a pair is kept when
the probability exceeds the threshold (BLIP: 0.5). Scoring is sharded and resumable like
captioning; the threshold is applied afterwards, so changing it re-uses the scores.
"""
import hashlib
import json
from pathlib import Path
from typing import List, Optional, Sequence

import torch
from torch.utils.data import DataLoader, Subset

from harness.core.registry import TASKS
from harness.core.task_result import PERCENT, TIMES_100, Metric, TaskResult

from ..datasets.errors import bad_sample
from ..sharding import Block
from ..text import pre_caption
from .corpus import bootstrapped_corpus, read_pairs
from .report import capfilt_report
from .shards import run_sharded


def read_synthetic_captions(path: Path, dataset) -> List[dict]:
    """The captioner's ``{image, caption}`` records, checked to be one per dataset image."""
    synthetic = read_pairs(path)
    for index, (pair, image) in enumerate(zip(synthetic, dataset.images)):
        if pair['image'] != image:
            raise bad_sample(path, f'record {index} captions {pair["image"]!r}, but web image '
                             f'{index} is {image!r}.', 're-run the caption stage on this web '
                             'corpus.', record_index=index)
    if len(synthetic) != len(dataset.images):
        raise bad_sample(path, f'{len(synthetic)} synthetic captions for '
                         f'{len(dataset.images)} web images.', 're-run the caption stage on '
                         'this web corpus.')
    return synthetic


def shard_pairs(dataset, image_indices: Sequence[int], synthetic: Sequence[dict]) -> List[dict]:
    """The pairs to score for some images: each web text of an image, then its synthetic one."""
    pairs = []
    for row, image in enumerate(image_indices):
        for record in dataset.texts_of_image[image]:
            pairs.append(dict(row=row, source='web', record=record, image=dataset.images[image],
                              caption=dataset.records[record]['caption']))
        pairs.append(dict(row=row, source='synthetic', record=image, image=dataset.images[image],
                          caption=synthetic[image]['caption']))
    return pairs


@torch.no_grad()
def score_shard(model, dataset, block: Block, synthetic: Sequence[dict], batch_size: int,
                max_words: int, device: str, num_workers: int = 0) -> List[dict]:
    """``[{source, record, image, caption, p_match}]`` for every text of one shard's images."""
    loader = DataLoader(Subset(dataset, block.items), batch_size=batch_size, shuffle=False,
                        num_workers=num_workers)
    scored = []
    for batch in loader:
        image_embeds = model.encode_image(batch['image'].to(device))
        pairs = shard_pairs(dataset, batch['index'].tolist(), synthetic)
        tokens = model.tokenize([pre_caption(pair['caption'], max_words) for pair in pairs])
        rows = torch.tensor([pair.pop('row') for pair in pairs], device=image_embeds.device)
        logits = model.itm_logits(tokens['input_ids'], tokens['attention_mask'],
                                  image_embeds=image_embeds[rows])
        for pair, probability in zip(pairs, logits.float().softmax(dim=-1)[:, 1].tolist()):
            scored.append(dict(pair, p_match=probability))
    return scored


@TASKS.register_module(name='capfilt_filter')
def filter_web_corpus(model, dataset, *, synthetic_file: str, human_ann_file: str,
                      device: str = 'cpu', work_dir=None, cache_key: Optional[str] = None,
                      threshold: float = 0.5, noise_labels: Optional[str] = None,
                      probe_cider: Optional[float] = None, batch_size: int = 32,
                      shard_size: int = 512, max_words: int = 30,
                      num_workers: int = 0) -> TaskResult:
    """Filter the web and synthetic texts of a :class:`WebImageDataset`; build the corpus.

    Args:
        model: a BLIP model with an ITM head (fine-tuned filter).
        dataset: the web images and their texts.
        synthetic_file: the caption stage's ``{image, caption}`` file (one per image).
        human_ann_file: human-annotated pairs (relative to the dataset's data root).
        work_dir: the shards go to ``<work_dir>/shards``.
        cache_key: identifies the checkpoint; shards of another checkpoint are discarded.
        threshold: keep a pair when its match probability is above this (BLIP: 0.5).
        noise_labels: side file of per-web-record noise labels (relative to the data
            root), read only for the report; missing means "unavailable".
        probe_cider: the captioner's CIDEr on a probe split, for the report.
        max_words: texts are cleaned and cut as in pre-training (BLIP: 30 words).

    Returns:
        A :class:`TaskResult` of the report's metrics (noise ratios, the filter's
        precision/recall/F1 where noise labels exist, synthetic-caption CIDEr); its
        ``outputs`` hold the ``corpus`` (``[{image, caption}]``), every scored pair
        (``scores``) and the report's ``notes``.
    """
    synthetic = read_synthetic_captions(Path(synthetic_file), dataset)
    captions_digest = hashlib.sha1(json.dumps(synthetic).encode()).hexdigest()
    job = dict(task='capfilt_filter', cache_key=cache_key, synthetic=captions_digest,
               batch_size=batch_size, max_words=max_words)
    scores, throughput = run_sharded(
        Path(work_dir) / 'shards', job, len(dataset), shard_size, desc='filter (ITM)',
        block_sizes=getattr(dataset, 'shard_sizes', None),
        process_shard=lambda block: score_shard(model, dataset, block, synthetic, batch_size,
                                                max_words, device, num_workers))
    human = read_pairs(dataset.resolve(human_ann_file))
    report = capfilt_report(scores, threshold, dataset.records, synthetic, human,
                            dataset.resolve(noise_labels) if noise_labels else None,
                            probe_cider)
    return TaskResult(
        metrics={name: report_metric(name, value) for name, value in report['metrics'].items()},
        throughput=throughput, unavailable=report['unavailable'],
        counts={'images': len(dataset), 'texts': len(scores)},
        outputs=dict(corpus=bootstrapped_corpus(human, scores, threshold), scores=scores,
                     notes=report['notes']))


def report_metric(name: str, value: float) -> Metric:
    """A CapFilt report value with its unit: CIDEr ×100, every other one a percentage
    (noise ratios are descriptive, the rest higher-is-better)."""
    if 'CIDEr' in name:
        return Metric(value, TIMES_100)
    return Metric(value, PERCENT, higher_is_better='noise' not in name)
