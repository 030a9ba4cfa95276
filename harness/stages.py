"""Experiment stages: registered steps that read earlier stages' outputs from a manifest.

An experiment is variants x seeds x stages. Each (variant, seed) has a work dir holding
``manifest.json``: per finished stage, its outputs (checkpoint paths, corpus files...) and
wall time. A stage is skipped when the manifest marks it done (``--force`` redoes it).
New protocols are new registered stages, not new scripts.
"""
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional

import torch
from harness.config import deep_merge
from harness.hooks import unwrap
from harness.registry import DATASETS, MODELS, STAGES, TASKS
from harness.results import atomic_write_text
from harness.runner import build_runner
from harness.safe_load import register_mmengine_safe_globals

RUNNER_KEYS = ('model', 'train_dataloader', 'train_cfg', 'optim_wrapper', 'param_scheduler',
               'val_dataloader', 'val_cfg', 'val_evaluator', 'test_dataloader', 'test_cfg',
               'test_evaluator', 'default_hooks', 'custom_hooks', 'env_cfg', 'log_processor',
               'log_level', 'default_scope', 'randomness', 'visualizer', 'auto_scale_lr',
               'launcher')


def write_json_atomic(path: Path, payload) -> None:
    """Write ``payload`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True))


class Manifest:
    """The ``manifest.json`` of one (variant, seed) work dir: finished stages and outputs."""

    def __init__(self, work_dir: Path):
        self.path = Path(work_dir) / 'manifest.json'
        self.stages: Dict[str, dict] = {}
        if self.path.exists():
            try:
                self.stages = json.loads(self.path.read_text())['stages']
            except (ValueError, KeyError) as error:
                raise ValueError(f'{self.path} is not a valid stage manifest ({error}); delete it '
                                 f'or re-run with --force') from error

    def done(self, stage: str) -> bool:
        """Whether ``stage`` finished."""
        return self.stages.get(stage, {}).get('done', False)

    def up_to_date(self, stage: str, fingerprint: Optional[str]) -> bool:
        """Whether ``stage`` finished from inputs with this fingerprint (see ``Stage``)."""
        return self.done(stage) and self.stages[stage].get('fingerprint') == fingerprint

    def outputs(self, stage: str) -> dict:
        """Outputs recorded by a finished stage (error if it has not run)."""
        if not self.done(stage):
            raise KeyError(f'stage {stage!r} has not finished in {self.path.parent}; '
                           f'list it before the stages that read its outputs')
        return self.stages[stage]['outputs']

    def mark_done(self, stage: str, outputs: dict, wall_time_s: float,
                  fingerprint: Optional[str] = None) -> None:
        """Record ``stage`` as finished with its outputs (written atomically)."""
        self.stages[stage] = dict(done=True, outputs=outputs, wall_time_s=wall_time_s)
        if fingerprint is not None:
            self.stages[stage]['fingerprint'] = fingerprint
        write_json_atomic(self.path, dict(stages=self.stages))


@dataclass
class StageContext:
    """What a stage sees: the variant's config, its work dir and the earlier stages' outputs."""

    experiment: str
    variant: str
    seed: int
    cfg: dict
    work_dir: Path
    manifest: Manifest
    launcher: str = 'none'
    device: str = field(default_factory=lambda: 'cuda' if torch.cuda.is_available() else 'cpu')


class Stage:
    """Base class: a named step of an experiment. Subclasses implement :meth:`run`."""

    def __init__(self, name: str):
        self.name = name

    def run(self, ctx: StageContext) -> dict:
        """Do the work and return the outputs later stages may read."""
        raise NotImplementedError

    def fingerprint(self) -> Optional[str]:
        """Identity of inputs from outside the experiment (None: none); a finished stage
        whose fingerprint changed runs again."""
        return None


def load_weights(model, checkpoint: str, logger=None):
    """Load ``checkpoint`` into ``model`` with the reporting loader; log the report."""
    from backbones.checkpoint import load_checkpoint  # noqa: PLC0415
    register_mmengine_safe_globals()
    report = load_checkpoint(model, checkpoint)
    message = f'loaded {checkpoint}:\n{report}'
    (logger.info if logger else print)(message)
    return report


def latest_checkpoint(stage_dir: Path) -> str:
    """The best checkpoint a training stage saved (``best_*.pth``), else its last one."""
    best = sorted(stage_dir.glob('best_*.pth'))
    if best:
        return str(best[-1])
    pointer = stage_dir / 'last_checkpoint'
    if not pointer.exists():
        raise FileNotFoundError(f'no checkpoint in {stage_dir}: the training stage saved none '
                                f'(is default_hooks.checkpoint disabled?)')
    return pointer.read_text().strip()


@STAGES.register_module()
class TrainStage(Stage):
    """Train with an mmengine Runner built from the variant config merged with ``runner``.

    Args:
        name: stage name (also its sub-directory).
        runner: overrides of the variant config for this stage (dataloaders, schedule,
            model heads such as ``model=dict(losses=('lm',))``...).
        init_from: a finished stage whose checkpoint initialises the model.
        corpus_from: a finished stage whose ``corpus`` output (an annotation file, e.g.
            CapFilt's bootstrapped corpus) replaces ``train_dataloader.dataset.ann_file``.
    """

    def __init__(self, name: str, runner: Optional[dict] = None, init_from: Optional[str] = None,
                 corpus_from: Optional[str] = None):
        super().__init__(name)
        self.runner_overrides = runner or {}
        self.init_from = init_from
        self.corpus_from = corpus_from

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
            corpus = ctx.manifest.outputs(self.corpus_from)['corpus']
            cfg['train_dataloader']['dataset']['ann_file'] = corpus
        return cfg

    def run(self, ctx: StageContext) -> dict:
        """Train (resuming an interrupted run of this stage) and return the checkpoint."""
        runner = build_runner(self.runner_config(ctx))
        if self.init_from:
            load_weights(runner.model, ctx.manifest.outputs(self.init_from)['checkpoint'],
                         runner.logger)
        runner.train()
        return dict(checkpoint=latest_checkpoint(ctx.work_dir / self.name),
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
        model: overrides of the variant's model config for evaluation.
        options: keyword options of the task evaluator (``k``, ``batch_size``...).
        params_from: the training stage whose model's parameter count is recorded (e.g.
            the pre-training model, whose count the sharing ablation compares); default:
            the evaluated model's own count.
    """

    def __init__(self, name: str, task: str, dataset: dict, dataset_name: str,
                 checkpoint_from: Optional[str] = None, checkpoint: Optional[str] = None,
                 split: str = 'test', model: Optional[dict] = None,
                 options: Optional[dict] = None, params_from: Optional[str] = None):
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

    def fingerprint(self) -> Optional[str]:
        """The given checkpoint file's identity, so that another checkpoint is evaluated anew."""
        return checkpoint_identity(self.checkpoint) if self.checkpoint and \
            os.path.exists(self.checkpoint) else self.checkpoint

    def run(self, ctx: StageContext) -> dict:
        """Build, load, evaluate, record; returns the metrics."""
        from harness.recording import record_evaluation  # noqa: PLC0415
        checkpoint = self.checkpoint or ctx.manifest.outputs(self.checkpoint_from)['checkpoint']
        if not os.path.exists(checkpoint):
            raise FileNotFoundError(f'stage {self.name!r}: checkpoint {checkpoint} does not '
                                    f'exist; pass --cfg-options checkpoint=/path/to/a/checkpoint')
        model = MODELS.build(deep_merge(ctx.cfg['model'], self.model_overrides))
        load_weights(model, checkpoint)
        model.to(ctx.device).eval()
        dataset = DATASETS.build(self.dataset_cfg)
        stage_dir = ctx.work_dir / self.name
        started = time.perf_counter()
        evaluate = TASKS.get(self.task)
        if evaluate is None:
            raise KeyError(f'stage {self.name!r}: no task {self.task!r} is registered; known '
                           f'tasks: {sorted(TASKS.module_dict)}')
        result = evaluate(model, dataset, device=ctx.device, work_dir=stage_dir,
                                      cache_key=checkpoint_identity(checkpoint),
                                      **self.options)
        params = (ctx.manifest.outputs(self.params_from)['params'] if self.params_from
                  else model.num_parameters())
        record_evaluation(ctx, self, model, result, params, time.perf_counter() - started)
        return dict(metrics=result['metrics'])


def checkpoint_identity(path: str) -> str:
    """A cache key that changes whenever the checkpoint file changes."""
    stat = os.stat(path)
    return f'{Path(path).name}-{stat.st_size}-{int(stat.st_mtime_ns)}'
