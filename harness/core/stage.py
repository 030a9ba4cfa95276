"""The stage contract: a named step of an experiment, what it sees, and where it records.

An experiment is variants x seeds x stages. Each (variant, seed) has a work dir holding
``manifest.json``: per finished stage, its outputs (checkpoint paths, corpus files...), wall
time, fingerprint and run id. Stages are registered in ``STAGES``; the harness's own (training,
evaluation) live in :mod:`harness.stages`, task-specific ones (CapFilt's) in their task
folder. A stage that evaluates something hands its :class:`~harness.core.task_result.TaskResult`
to ``ctx.record``, which the experiment runner provides; a stage never writes results
records itself.
"""
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import torch
from mmengine.dist import barrier, broadcast_object_list, is_main_process

from harness.core.files import atomic_write_json


class Manifest:
    """The ``manifest.json`` of one (variant, seed) work dir: finished stages and outputs.

    Under torch.distributed every rank holds the same entries; rank 0 alone writes the file.
    """

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
                  fingerprint: Optional[str] = None, run_id: Optional[str] = None,
                  copied_from: Optional[str] = None) -> None:
        """Record ``stage`` as finished with its outputs (written atomically by rank 0,
        which every rank waits for).

        ``run_id`` names the run that made the outputs (new for each run, kept when a
        finished stage is copied from another variant, ``copied_from`` its folder). Every
        rank keeps the entry rank 0 writes (its outputs, time and run id), so later stages
        and their fingerprints read the same manifest on every rank.
        """
        entry = dict(done=True, outputs=outputs, wall_time_s=wall_time_s,
                     run_id=run_id or uuid.uuid4().hex)
        if fingerprint is not None:
            entry['fingerprint'] = fingerprint
        if copied_from is not None:
            entry['copied_from'] = copied_from
        shared = [entry]
        broadcast_object_list(shared)  # rank 0's run id, outputs and time on every rank
        self.stages[stage] = shared[0]
        if is_main_process():
            atomic_write_json(self.path, dict(stages=self.stages))
        barrier()


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
    #: ``recorder(ctx, stage, model, result, params, wall_time_s, load=None, init=None)``
    #: appends a results record (the experiment runner sets it; None outside an experiment).
    recorder: Optional[Callable[..., Any]] = None

    def record(self, stage: 'Stage', model, result, params: int, wall_time_s: float,
               load: Optional[dict] = None, init: Optional[dict] = None) -> None:
        """Append the results record of ``stage``'s evaluation ``result`` (a ``TaskResult``);
        ``load`` is how much of the model its checkpoint filled (see ``EvaluateStage``),
        ``init`` the weights its training started from (``initialise_weights``' record).
        Under torch.distributed rank 0 alone records (every rank holds the same result)."""
        if self.recorder is None:
            raise RuntimeError(f'stage {stage.name!r} produced a result, but this context has '
                               f'no recorder; run it through harness.experiment')
        if is_main_process():
            self.recorder(self, stage, model, result, params, wall_time_s, load=load, init=init)


class Stage:
    """Base class: a named step of an experiment. Subclasses implement :meth:`run`."""

    #: Top-level keys of the variant config (``ctx.cfg``) that :meth:`run` reads besides the
    #: stage's own arguments; a finished stage is reused while they (and its arguments and
    #: inputs) are unchanged. None: any key (every config change runs the stage again).
    config_keys: Optional[Tuple[str, ...]] = None
    #: Whether a finished run of this stage in another variant (same seed, same fingerprint)
    #: may be copied instead of running it again. Only for stages whose outputs depend on
    #: nothing but their fingerprint and whose paths lie in their own folder; never for a
    #: stage that records results (the record would name the other variant).
    shareable: bool = False

    def __init__(self, name: str):
        self.name = name

    def run(self, ctx: StageContext) -> dict:
        """Do the work and return the outputs later stages may read."""
        raise NotImplementedError

    def fingerprint(self) -> Optional[str]:
        """Identity of inputs from outside the experiment (None: none); a finished stage
        whose fingerprint changed runs again."""
        return None


def checkpoint_identity(path: str) -> str:
    """A cache key that changes whenever the checkpoint file changes."""
    stat = os.stat(path)
    return f'{Path(path).name}-{stat.st_size}-{int(stat.st_mtime_ns)}'
