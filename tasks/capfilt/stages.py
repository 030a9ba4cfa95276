"""CapFilt as experiment stages: caption the web images, filter, write the bootstrapped corpus.

BLIP's CapFilt, stage by stage (``configs/_base_/experiments/capfilt.py`` wires them):
a model pre-trained on the noisy corpus is fine-tuned into a captioner (LM) and a filter
(ITC+ITM) on human pairs (two ``TrainStage``s); :class:`CaptionCorpusStage` writes one
synthetic caption per web image; :class:`FilterCorpusStage` keeps the web and synthetic
texts the filter judges matched and writes the corpus (all human pairs + kept web + kept
synthetic) plus a results record of its report; a new model is then pre-trained from
scratch with ``TrainStage(corpus_from='filter_corpus')``. :class:`ReplicateCorpusStage`
writes the control corpus of the "more samples, no CapFilt" ablation.

The work itself (sharded and resumable, rank-split under torch.distributed) is done by the
task functions of this folder (:mod:`.captioning`, :mod:`.filtering`, :mod:`.corpus`) and
the caption task (the probe split's CIDEr).
"""
import json
import time
from pathlib import Path
from typing import Optional, Tuple

from mmengine.dist import barrier, is_main_process
from mmengine.logging import print_log

from backbones.checkpoint import load_weights
from harness.core.files import atomic_write_text
from harness.core.registry import DATASETS, MODELS, STAGES
from harness.core.stage import Stage, StageContext, checkpoint_identity
from harness.core.tree import deep_merge

from ..caption.evaluate import evaluate_caption
from .captioning import caption_web_images
from .corpus import read_pairs, replicated_corpus
from .corpus_shards import write_corpus_shards
from .filtering import filter_web_corpus

SYNTHETIC_FILE = 'synthetic_captions.json'
CORPUS_FILE = 'corpus.json'
SCORES_FILE = 'scores.json'
REPORT_FILE = 'report.json'
CORPUS_FORMATS = ('json', 'webdataset')


def trained_model(ctx: StageContext, stage: str, overrides: dict) -> Tuple[object, str]:
    """The variant's model with ``overrides``, loaded from ``stage``'s checkpoint, in eval mode.

    Returns the model and the checkpoint path.
    """
    checkpoint = ctx.manifest.outputs(stage)['checkpoint']
    model = MODELS.build(deep_merge(ctx.cfg['model'], overrides))
    load_weights(model, checkpoint)
    return model.to(ctx.device).eval(), checkpoint


def write_on_main_process(path: Path, payload) -> None:
    """Write ``payload`` as JSON atomically on the main process; every rank waits for it."""
    if is_main_process():
        atomic_write_text(path, json.dumps(payload, indent=1))
    barrier()


@STAGES.register_module()
class CaptionCorpusStage(Stage):
    """One synthetic caption per web image, by a fine-tuned captioner.

    Args:
        name: stage name (also its sub-directory; shards go to ``<name>/shards``).
        captioner_from: the training stage whose checkpoint is the captioner.
        images: ``WebImageDataset`` config of the web corpus.
        model: overrides of the variant's model config for the captioner (its LM head
            and prompt, e.g. ``'${caption_model}'``).
        decoding: options of ``generate_captions`` (BLIP's CapFilt: nucleus, top_p 0.9).
        probe_dataset: optional ``CaptionEvalDataset`` (COCO-format) captioned with the
            same decoding and scored with CIDEr; the filter report quotes it when the web
            images have no human captions (ToyWorld's, and real web data's, have none).
        batch_size, shard_size, num_workers, autocast_dtype, weights_dtype: see the
            ``capfilt_caption`` task (the precision applies to the probe split too).

    Outputs: ``captions`` (path of ``{image, caption}`` JSON), ``num_images``, and
    ``probe_CIDEr`` when a probe dataset is set.
    """

    config_keys = ('model',)  # what run() reads of the variant config
    shareable = True

    def __init__(self, name: str, captioner_from: str, images: dict, model: Optional[dict] = None,
                 decoding: Optional[dict] = None, probe_dataset: Optional[dict] = None,
                 batch_size: int = 32, shard_size: int = 512, num_workers: int = 0,
                 autocast_dtype: Optional[str] = None, weights_dtype: Optional[str] = None):
        super().__init__(name)
        self.captioner_from = captioner_from
        self.images_cfg = images
        self.model_overrides = model or {}
        self.decoding = decoding or {}
        self.probe_cfg = probe_dataset
        self.options = dict(batch_size=batch_size, shard_size=shard_size,
                            num_workers=num_workers)
        self.precision = dict(autocast_dtype=autocast_dtype, weights_dtype=weights_dtype)

    def run(self, ctx: StageContext) -> dict:
        """Caption (resuming finished shards), write the captions, score the probe split."""
        model, checkpoint = trained_model(ctx, self.captioner_from, self.model_overrides)
        stage_dir = ctx.work_dir / self.name
        result = caption_web_images(
            model, DATASETS.build(self.images_cfg), device=ctx.device, work_dir=stage_dir,
            cache_key=checkpoint_identity(checkpoint), decoding=self.decoding, seed=ctx.seed,
            **self.options, **self.precision)
        path = stage_dir / SYNTHETIC_FILE
        captions = result.outputs['captions']
        write_on_main_process(path, captions)
        outputs = dict(captions=str(path), num_images=len(captions),
                       throughput=result.throughput)
        if self.probe_cfg:
            probe = evaluate_caption(
                model, DATASETS.build(self.probe_cfg), device=ctx.device,
                work_dir=stage_dir / 'probe', cache_key=checkpoint_identity(checkpoint),
                batch_size=self.options['batch_size'], decoding=self.decoding,
                metrics=('CIDEr',), **self.precision)
            outputs['probe_CIDEr'] = probe.metrics['CIDEr'].value
        return outputs


@STAGES.register_module()
class FilterCorpusStage(Stage):
    """Filter web and synthetic texts with a fine-tuned ITM filter; write the corpus and report.

    The corpus (all human pairs + web and synthetic pairs whose ITM match probability is
    above ``threshold``) goes to ``<name>/corpus.json``, every scored pair (``source``,
    ``record``, ``image``, ``caption``, ``p_match``) to ``<name>/scores.json``. The report
    (noise ratio per source, filter precision/recall/F1 against noise labels where a side
    file exists, synthetic caption CIDEr) becomes a results record (task ``capfilt``) and
    ``<name>/report.json``.

    Args:
        name: stage name (also its sub-directory; shards go to ``<name>/shards``).
        filter_from: the training stage whose checkpoint is the filter.
        captions_from: the ``CaptionCorpusStage`` whose synthetic captions are filtered.
        images: ``WebImageDataset`` config of the web corpus (as the caption stage's).
        human_ann_file: human pairs (relative to the images' data root), all kept.
        model: overrides of the variant's model config for the filter (ITC/ITM heads).
        threshold: match probability a pair must exceed to be kept (BLIP: 0.5).
        noise_labels: noise-label side file (relative to the data root) for the report only.
        dataset_name: dataset name on leaderboards.
        split: split name on leaderboards.
        batch_size, shard_size, max_words, num_workers: see the ``capfilt_filter`` task.
        corpus_format: ``'json'`` (``corpus.json``) or ``'webdataset'``: the corpus as tar
            shards (:mod:`.corpus_shards`; ``images`` must then be a
            ``WebShardImageDataset``), for a ``WebShardDataset`` with
            ``TrainStage(corpus_field='shards')``.

    Outputs: ``corpus`` (path, or the list of shard paths), ``corpus_size``, ``scores`` and
    ``report`` (paths), ``metrics``, ``composition`` (``dict(human=, web=)``: the human
    pairs at the corpus's head and the web pairs before filtering, for ``CorpusMixSampler``).
    """

    config_keys = ('model',)  # what run() reads of the variant config

    task = 'capfilt'

    def __init__(self, name: str, filter_from: str, captions_from: str, images: dict,
                 human_ann_file: str, model: Optional[dict] = None, threshold: float = 0.5,
                 noise_labels: Optional[str] = None, dataset_name: str = 'web',
                 split: str = 'train', batch_size: int = 32, shard_size: int = 512,
                 max_words: int = 30, num_workers: int = 0, corpus_format: str = 'json'):
        super().__init__(name)
        if corpus_format not in CORPUS_FORMATS:
            raise ValueError(f'stage {name!r}: corpus_format={corpus_format!r}; use one of '
                             f'{CORPUS_FORMATS}')
        self.corpus_format = corpus_format
        self.filter_from = filter_from
        self.captions_from = captions_from
        self.images_cfg = images
        self.model_overrides = model or {}
        self.dataset_name = dataset_name
        self.split = split
        self.options = dict(human_ann_file=human_ann_file, threshold=threshold,
                            noise_labels=noise_labels, batch_size=batch_size,
                            shard_size=shard_size, max_words=max_words, num_workers=num_workers)

    def run(self, ctx: StageContext) -> dict:
        """Score (resuming finished shards), write corpus and report, append the record."""
        started = time.perf_counter()
        model, checkpoint = trained_model(ctx, self.filter_from, self.model_overrides)
        captions = ctx.manifest.outputs(self.captions_from)
        stage_dir = ctx.work_dir / self.name
        dataset = DATASETS.build(self.images_cfg)
        result = filter_web_corpus(
            model, dataset, device=ctx.device, work_dir=stage_dir,
            cache_key=checkpoint_identity(checkpoint), synthetic_file=captions['captions'],
            probe_cider=captions.get('probe_CIDEr'), **self.options)
        paths = {name: stage_dir / file for name, file in (
            ('corpus', CORPUS_FILE), ('scores', SCORES_FILE), ('report', REPORT_FILE))}
        corpus = result.outputs['corpus']
        write_on_main_process(paths['corpus'], corpus)
        write_on_main_process(paths['scores'], result.outputs['scores'])
        outputs = {name: str(path) for name, path in paths.items()}
        if self.corpus_format == 'webdataset':
            outputs['corpus'] = write_corpus_shards(
                stage_dir, dataset, read_pairs(dataset.resolve(self.options['human_ann_file'])),
                result.outputs['scores'], self.options['threshold'])
        report = dict(metrics=result.values(), unavailable=result.unavailable,
                      notes=result.outputs['notes'], corpus_size=len(corpus))
        write_on_main_process(paths['report'], report)
        for metric, reason in result.unavailable.items():
            print_log(f'{self.name}: {metric} unavailable: {reason}', logger='current')
        if ctx.recorder is not None:
            ctx.record(self, model, result, model.num_parameters(),
                       time.perf_counter() - started)
        composition = dict(human=len(read_pairs(dataset.resolve(self.options['human_ann_file']))),
                           web=sum(score['source'] == 'web' for score in result.outputs['scores']))
        return dict(outputs, corpus_size=len(corpus), composition=composition,
                    metrics=result.values())


@STAGES.register_module()
class ReplicateCorpusStage(Stage):
    """Human pairs + web pairs replicated to the size of another stage's corpus (no CapFilt).

    The control of BLIP's "CapFilt vs more training samples" ablation: as many samples per
    epoch as the bootstrapped corpus, but only the original web texts.

    Args:
        name: stage name (the corpus goes to ``<name>/corpus.json``).
        size_from: the stage whose ``corpus_size`` output is matched (``filter_corpus``).
        images: ``WebImageDataset`` config of the web corpus (its annotation file is used).
        human_ann_file: human pairs (relative to the web images' data root).

    Outputs: ``corpus`` (path), ``corpus_size``, ``composition`` (as ``FilterCorpusStage``'s).
    """

    config_keys = ()  # what run() reads of the variant config
    shareable = True

    def __init__(self, name: str, size_from: str, images: dict, human_ann_file: str):
        super().__init__(name)
        self.size_from = size_from
        self.images_cfg = images
        self.human_ann_file = human_ann_file

    def run(self, ctx: StageContext) -> dict:
        """Write the replicated corpus."""
        web = DATASETS.build(self.images_cfg)
        target = ctx.manifest.outputs(self.size_from)['corpus_size']
        human_file = web.resolve(self.human_ann_file)
        corpus = replicated_corpus(human_file, web.ann_file, target)
        if len(corpus) != target:
            print_log(f'{self.name}: {self.size_from} has {target} pairs, fewer than the human '
                      f'and web pairs together; the replicated corpus keeps all '
                      f'{len(corpus)} of them once', logger='current')
        path = ctx.work_dir / self.name / CORPUS_FILE
        write_on_main_process(path, corpus)
        composition = dict(human=len(read_pairs(human_file)), web=len(read_pairs(web.ann_file)))
        return dict(corpus=str(path), corpus_size=len(corpus), composition=composition)
