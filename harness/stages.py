"""The harness's own experiment stages: training with an mmengine Runner, evaluation.

The stage contract (``Stage``, ``StageContext``, ``Manifest``) is in
:mod:`harness.core.stage`; task-specific stages live in their task folder (CapFilt's in
``tasks/capfilt/stages.py``). Models, datasets, tasks and the checkpoint loader are found
through the registries, never imported.
"""
import inspect
import os
import time
from pathlib import Path
from typing import Mapping, Optional

import torch
from mmengine.dist import barrier

from harness.core.model_api import DEFAULT_PREPROCESSING, backbone_preprocessing
from harness.core.registry import DATA_SAMPLERS, DATASETS, FUNCTIONS, MODELS, STAGES, TASKS
from harness.core.stage import Stage, StageContext, checkpoint_identity
from harness.core.tree import deep_merge
from harness.hooks import unwrap
from harness.runner_builder import build_runner

RUNNER_KEYS = ('model', 'train_dataloader', 'train_cfg', 'optim_wrapper', 'param_scheduler',
               'val_dataloader', 'val_cfg', 'val_evaluator', 'test_dataloader', 'test_cfg',
               'test_evaluator', 'default_hooks', 'custom_hooks', 'env_cfg', 'log_processor',
               'log_level', 'default_scope', 'randomness', 'visualizer', 'auto_scale_lr',
               'launcher')
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def load_weights(model, checkpoint: str, logger=None):
    """Load ``checkpoint`` into ``model`` with the registered reporting loader; log the report."""
    return FUNCTIONS.get('load_weights')(model, checkpoint, logger)


def selected_checkpoint(stage_dir: Path) -> str:
    """The checkpoint a training stage hands on: its best (``best_*.pth``, saved when the
    config selects by a validation metric), else its last one."""
    best = sorted(stage_dir.glob('best_*.pth'))
    if best:
        return str(best[-1])
    pointer = stage_dir / 'last_checkpoint'
    if not pointer.exists():
        raise FileNotFoundError(f'no checkpoint in {stage_dir}: the training stage saved none '
                                f'(is default_hooks.checkpoint disabled?)')
    return pointer.read_text().strip()


def takes_argument(registry, cfg: Mapping, argument: str) -> bool:
    """Whether the class that ``cfg`` (a ``type=...`` config of ``registry``) builds has an
    ``argument`` parameter."""
    built_type = cfg.get('type')
    built_class = registry.get(built_type) if isinstance(built_type, str) else built_type
    return built_class is not None and argument in inspect.signature(built_class).parameters


def with_preprocessing(dataset_cfg: dict, preprocessing: Mapping) -> dict:
    """``dataset_cfg`` with the image backbone's ``preprocessing`` (mean, std, interpolation)
    where its dataset class takes one and the config sets none (a set one is kept)."""
    if dataset_cfg.get('preprocessing') is not None or \
            not takes_argument(DATASETS, dataset_cfg, 'preprocessing'):
        return dataset_cfg
    return dict(dataset_cfg, preprocessing=dict(preprocessing))


def with_composition(loader_cfg: dict, composition: Optional[dict]) -> dict:
    """``loader_cfg`` with its sampler given the corpus's ``composition`` (human and web pair
    counts, a corpus stage's output) where the sampler class takes one and sets none."""
    sampler = loader_cfg.get('sampler')
    if not isinstance(sampler, Mapping) or sampler.get('composition') is not None or \
            not takes_argument(DATA_SAMPLERS, sampler, 'composition'):
        return loader_cfg
    return dict(loader_cfg, sampler=dict(sampler, composition=composition))


def configured_preprocessing(model_cfg: Mapping) -> dict:
    """The pre-processing the image backbone of ``model_cfg`` (its ``vision``) asks for; the
    backbone is built on the meta device, so no weights are made. CLIP's without one."""
    vision = model_cfg.get('vision')
    if vision is None:
        return dict(DEFAULT_PREPROCESSING)
    with torch.device('meta'):
        return backbone_preprocessing(MODELS.build(vision))


@STAGES.register_module()
class TrainStage(Stage):
    """Train with an mmengine Runner built from the variant config merged with ``runner``.

    Args:
        name: stage name (also its sub-directory).
        runner: overrides of the variant config for this stage (dataloaders, schedule,
            model heads such as ``model=dict(losses=('lm',))``...).
        init_from: a finished stage whose checkpoint initialises the model; what initialised
            that stage (its ``init`` output) is handed on, so records name the first weights.
        corpus_from: a finished stage whose ``corpus`` output (an annotation file, e.g.
            CapFilt's bootstrapped corpus) replaces ``train_dataloader.dataset.ann_file``;
            its ``composition`` output goes to a sampler that takes one
            (``CorpusMixSampler``).
        corpus_field: the dataset argument the corpus replaces (``'shards'`` for a corpus
            written as WebDataset shards and read by ``WebShardDataset``).
        init: initial weights from files, ``dict(vision=dict(type='timm', path=...),
            text=dict(type='bert', path=...))`` (``type='random'``: keep random weights);
            the types are ``FUNCTIONS['initialise_weights']``'s (``backbones.initial_weights``).
            What was loaded (paths, sha256, the load report's counts) is in the outputs.
        init_parts_from: a finished initialisation stage (e.g. ``ClipInitStage``) whose
            ``init`` output (parts such as ``dict(vision=dict(type='open_clip', path=...))``)
            is merged over ``init``.
        init_required: refuse to build without ``init`` or ``init_from`` (real pre-training
            must not start from random weights by accident).

    Datasets whose class takes ``preprocessing`` and whose config sets none get the image
    backbone's (mean, std, interpolation; see ``harness.core.model_api``).
    """

    config_keys = RUNNER_KEYS
    shareable = True

    def __init__(self, name: str, runner: Optional[dict] = None, init_from: Optional[str] = None,
                 corpus_from: Optional[str] = None, init: Optional[dict] = None,
                 init_required: bool = False, init_parts_from: Optional[str] = None,
                 corpus_field: str = 'ann_file'):
        super().__init__(name)
        self.corpus_field = corpus_field
        self.runner_overrides = runner or {}
        self.init_from = init_from
        self.corpus_from = corpus_from
        self.init = init
        self.init_parts_from = init_parts_from
        if init_from and (init or init_parts_from):
            raise ValueError(f'stage {name!r}: give init_from (a training stage) or init / '
                             f'init_parts_from (weight files), not both')
        if not init_from and not init_parts_from and (init or init_required):
            FUNCTIONS.get('check_initialisation')(init, init_required, f'stage {name!r}')

    def runner_config(self, ctx: StageContext) -> dict:
        """The full runner config of this stage."""
        base = {k: v for k, v in ctx.cfg.items() if k in RUNNER_KEYS}
        cfg = deep_merge(base, self.runner_overrides)
        stage_dir = ctx.work_dir / self.name
        cfg.update(work_dir=str(stage_dir), launcher=ctx.launcher,
                   randomness=dict(cfg.get('randomness', {}), seed=ctx.seed),
                   resume=(stage_dir / 'last_checkpoint').exists(),
                   experiment_name=f'{ctx.experiment}.{ctx.variant}.seed{ctx.seed}.{self.name}')
        if self.corpus_from:
            corpus = ctx.manifest.outputs(self.corpus_from)
            cfg['train_dataloader']['dataset'][self.corpus_field] = corpus['corpus']
            cfg['train_dataloader'] = with_composition(cfg['train_dataloader'],
                                                       corpus.get('composition'))
        loaders = [key for key in LOADERS if isinstance(cfg.get(key), Mapping)
                   and isinstance(cfg[key].get('dataset'), Mapping)]
        if loaders:
            preprocessing = configured_preprocessing(cfg['model'])
            for key in loaders:
                cfg[key] = dict(cfg[key], dataset=with_preprocessing(cfg[key]['dataset'],
                                                                     preprocessing))
        return cfg

    def initial_weights(self, ctx: StageContext) -> Optional[dict]:
        """``init`` with the parts the ``init_parts_from`` stage made merged over it."""
        if not self.init_parts_from:
            return self.init
        return dict(self.init or {}, **ctx.manifest.outputs(self.init_parts_from)['init'])

    def run(self, ctx: StageContext) -> dict:
        """Train (resuming an interrupted run of this stage) and return the checkpoint."""
        runner = build_runner(self.runner_config(ctx))
        outputs = {}
        init = self.initial_weights(ctx)
        if self.init_from:
            earlier = ctx.manifest.outputs(self.init_from)
            load_weights(runner.model, earlier['checkpoint'], runner.logger)
            if earlier.get('init'):
                outputs['init'] = earlier['init']
        elif init:
            outputs['init'] = FUNCTIONS.get('initialise_weights')(
                unwrap(runner.model), init, runner.logger, f'stage {self.name!r}')
        runner.train()
        barrier()  # rank 0 saves the checkpoints (the last epoch's, the best) with no wait after
        return dict(outputs, checkpoint=selected_checkpoint(ctx.work_dir / self.name),
                    params=unwrap(runner.model).num_parameters())


@STAGES.register_module()
class EvaluateStage(Stage):
    """Evaluate a checkpoint on one task/dataset/split and append a results record.

    Args:
        name: stage name.
        task: a name in the ``TASKS`` registry (``'retrieval'``, ``'caption'``...).
        checkpoint_from: the finished training stage whose checkpoint is evaluated.
        checkpoint: instead of ``checkpoint_from``, a checkpoint path (official BLIP
            ``.pth``, Hugging Face BLIP directory, mmengine checkpoint) to evaluate as is.
        dataset: dataset config (built from ``DATASETS``).
        dataset_name: name shown on leaderboards (e.g. ``'toyworld_coco'``, ``'coco'``).
        split: split shown on leaderboards.
        model: overrides of the variant's model config for evaluation (the evaluation
            configs' model is ``dict(type='BlipFromCheckpoint', checkpoint=...)``: the
            architecture, heads and tokenizer read from the checkpoint itself).
        options: keyword options of the task evaluator (``k``, ``batch_size``...).
        params_from: the training stage whose model's parameter count is recorded (e.g.
            the pre-training model, whose count the sharing ablation compares); default:
            the evaluated model's own count.
        limit: evaluate only the first ``limit`` images/items of the dataset (a smoke run,
            ``run.py --limit``; the record says so in ``extra['limit']``). The dataset must
            have a ``limit(count)`` method.
        strict: refuse a checkpoint that leaves any weight the evaluation reads unloaded
            (missing or of another shape); momentum encoders, ITC queues and temperature are
            not read, and checkpoint parts the model lacks are reported, not refused. With
            ``strict=False`` the stage scores what loaded; its record and board row say so.

    The record keeps the load coverage (``extra['load']``: tensors loaded of those the
    model reads, ``strict``, source). One image size reaches model and data: a dataset
    config whose ``image_size`` is ``None`` gets the built model's (e.g. the resolution a
    checkpoint's ``config.json`` names); one that sets it switches the model's ViT to it
    (position embeddings interpolated, as BLIP does). Likewise a dataset whose class takes
    ``preprocessing`` and whose config sets none gets the model's (its image backbone's mean,
    std and interpolation). The record names the weights training started from (the
    ``init`` output of ``checkpoint_from``), when that stage had any.
    """

    config_keys = ('model',)

    def __init__(self, name: str, task: str, dataset: dict, dataset_name: str,
                 checkpoint_from: Optional[str] = None, checkpoint: Optional[str] = None,
                 split: str = 'test', model: Optional[dict] = None,
                 options: Optional[dict] = None, params_from: Optional[str] = None,
                 limit: Optional[int] = None, strict: bool = True):
        super().__init__(name)
        if (checkpoint_from is None) == (checkpoint is None):
            raise ValueError(f'stage {name!r}: give exactly one of checkpoint_from (a training '
                             f'stage) or checkpoint (a path), e.g. --cfg-options '
                             f'checkpoint=/models/model_base_retrieval_coco.pth')
        self.task = task
        self.checkpoint_from = checkpoint_from
        self.checkpoint = checkpoint
        self.dataset_cfg = dataset
        self.dataset_name = dataset_name
        self.split = split
        self.model_overrides = model or {}
        self.options = options or {}
        self.params_from = params_from
        self.limit = limit
        self.strict = strict

    def fingerprint(self) -> Optional[str]:
        """The given checkpoint file's identity, so that another checkpoint is evaluated anew."""
        return checkpoint_identity(self.checkpoint) if self.checkpoint and \
            os.path.exists(self.checkpoint) else self.checkpoint

    def run(self, ctx: StageContext) -> dict:
        """Build, load, evaluate, record; returns the metrics."""
        evaluate = TASKS.get(self.task)
        if evaluate is None:
            raise KeyError(
                f'stage {self.name!r}: no task {self.task!r} is registered; known tasks: '
                f'{sorted(TASKS.module_dict)}. A task is a function decorated with '
                f'@TASKS.register_module(name={self.task!r}) (harness.core.registry) in a '
                f'module under tasks/ (found automatically) or in a module named by the '
                f"config's custom_imports = dict(imports=['my_package.my_task'])")
        checkpoint = self.checkpoint or ctx.manifest.outputs(self.checkpoint_from)['checkpoint']
        if not os.path.exists(checkpoint):
            raise FileNotFoundError(f'stage {self.name!r}: checkpoint {checkpoint} does not '
                                    f'exist; pass --cfg-options checkpoint=/path/to/a/checkpoint')
        model = MODELS.build(deep_merge(ctx.cfg['model'], self.model_overrides))
        load = FUNCTIONS.get('load_for_evaluation')(
            model, checkpoint, strict=self.strict, image_size=self.dataset_cfg.get('image_size'))
        model.to(ctx.device).eval()
        dataset = DATASETS.build(self.dataset_config(model))
        if self.limit is not None:
            if not hasattr(dataset, 'limit'):
                raise ValueError(f'stage {self.name!r}: {type(dataset).__name__} cannot be '
                                 f'limited (it has no limit(count) method); run without --limit')
            dataset = dataset.limit(self.limit)
        started = time.perf_counter()
        result = evaluate(model, dataset, device=ctx.device, work_dir=ctx.work_dir / self.name,
                          cache_key=checkpoint_identity(checkpoint), **self.options)
        params = (ctx.manifest.outputs(self.params_from)['params'] if self.params_from
                  else model.num_parameters())
        init = ctx.manifest.outputs(self.checkpoint_from).get('init') \
            if self.checkpoint_from else None
        ctx.record(self, model, result, params, time.perf_counter() - started, load=load,
                   init=init)
        return dict(metrics=result.values())

    def dataset_config(self, model) -> dict:
        """The dataset config, its ``image_size`` the model's where it is ``None`` and its
        ``preprocessing`` the model's where its class takes one and the config sets none."""
        cfg = self.dataset_cfg
        if 'image_size' in cfg and cfg['image_size'] is None:
            cfg = dict(cfg, image_size=model.image_size)
        return with_preprocessing(cfg, getattr(model, 'preprocessing', DEFAULT_PREPROCESSING))
