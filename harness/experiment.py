"""Run an experiment: every variant x seed through the stage list, then the leaderboard.

An experiment config holds, besides an ordinary model/data config:

* ``experiment = dict(name=..., seeds=[0], variants=dict(NAME=overrides, ...), stages=[...])``
  where each variant's overrides are merged into the config and each stage is a
  ``STAGES`` config (``dict(type='TrainStage', name='pretrain', ...)``);
* ``leaderboard = dict(...)`` - the board spec (see :mod:`harness.leaderboard`);
* ``leaderboard_dir`` - where the board goes (default ``leaderboards/``, the repository's
  committed boards); ``'${work_dir}'`` puts it in the run's work dir, as the ad-hoc
  evaluations of ``configs/eval_*.py`` do;
* ``experiment.name_variant_after = 'checkpoint'`` - the single variant is named after the
  file or folder that config key names (so a board's rows say which checkpoint they are).

Work dirs: ``<work_dir>/<variant>/seed_<seed>/<stage>/``. A finished stage is reused while
its fingerprint is unchanged: its own resolved stage config, the part of the variant config
it reads (``Stage.config_keys``: a ``TrainStage`` its runner keys, an ``EvaluateStage`` its
``model``), the data source's spec, any outside input (``Stage.fingerprint()``, e.g. a
checkpoint file) and the manifest entries of the earlier stages it reads (those its
arguments name: ``init_from``, ``checkpoint_from``...). So an evaluation-only change
(``retrieval_k``) re-runs that evaluation and keeps the training before it, and a stage that
runs again (changed, or ``force``) re-runs every stage that reads it.

Variants share work: a ``shareable`` stage (training, CapFilt's captioning) that another
variant of the same seed already finished with the same fingerprint is copied from there
instead of run (the copy keeps that run's id, so the stages after it match too). CapFilt's
ablations thus bootstrap the corpus once per seed, not once per variant.

Every chosen variant name and every value (:func:`harness.config.check_values`) is checked
before any stage runs.

``jobs`` above 1 (``--jobs N``, or ``experiment.jobs`` in the config) shares the (variant,
seed) runs among that many child processes (:mod:`harness.variant_jobs`), each computing
what one sequential process would; the board follows once all have finished.

Several processes (``torchrun --nproc_per_node N harness/run.py CONFIG --launcher pytorch``)
join their process group before the first stage. Rank 0 alone clears, copies and writes
(stage folders, the manifest, results records, the board) and every rank waits for it, so
all ranks decide from the same manifest; the stages split their work across ranks.
"""
import inspect
import os
import re
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Iterable, List, Mapping, Optional, Sequence

from mmengine.dist import barrier, broadcast_object_list, is_main_process
from mmengine.logging import print_log

from harness.config import (check_values, config_file, data_source_name, nearest_names,
                            resolve_config, resolve_references)
from harness.core.registry import STAGES
from harness.core.stage import Manifest, Stage, StageContext
from harness.core.tree import deep_merge
from harness.distributed import init_distributed
from harness.leaderboard import write_leaderboard
from harness.recording import record_evaluation
from harness.results import collect_records, config_hash
from harness.stage_times import COPIED, RAN, REUSED, StageTime, stage_time_table
from harness.variant_jobs import (VariantJob, finish_job_file, job_command, job_runs,
                                  run_groups, run_variant_jobs, write_job_file)

# Config keys that say how results are shown or where the config lives, not what is computed.
BOOKKEEPING_KEYS = ('leaderboard', 'leaderboard_dir', '_config_file')
# Suffixes left out when a variant is named after a checkpoint file.
CHECKPOINT_SUFFIXES = ('.pth', '.pt', '.bin', '.ckpt', '.safetensors')
VARIANT_NAME = re.compile(r'[\w.-]+')


def variant_names(cfg: dict) -> List[str]:
    """Variant names in declaration order (a config without variants has one: ``'default'``)."""
    return list(cfg['experiment'].get('variants') or {'default': {}})


def variant_config(cfg: dict, variant: str) -> dict:
    """The config of one variant: its overrides merged into the experiment config."""
    variants = cfg['experiment'].get('variants') or {'default': {}}
    if variant not in variants:
        raise KeyError(f'no variant {variant!r} in {cfg.get("_config_file")}; '
                       f'the experiment declares {sorted(variants)}')
    return deep_merge({k: v for k, v in cfg.items() if k != 'experiment'}, variants[variant])


def resolved_variant_config(cfg: dict, variant: str) -> dict:
    """The variant's config with every reference resolved: what its stages see.

    ``leaderboard_dir`` is left out: it may refer to ``${work_dir}``, which only
    :func:`board_dir` knows.
    """
    return resolve_config({k: v for k, v in variant_config(cfg, variant).items()
                           if k != 'leaderboard_dir'})


def rename_variant(cfg: dict, name: Optional[str] = None) -> dict:
    """``cfg`` with its single variant renamed to ``name``, or (without ``name``) after the
    checkpoint named by ``experiment.name_variant_after``; ``cfg`` itself when neither applies.

    Variant names are board rows and work-dir folders, so ad-hoc evaluations of different
    checkpoints land in different rows rather than replacing one another.
    """
    experiment = cfg['experiment']
    variants = experiment.get('variants') or {'default': {}}
    source = experiment.get('name_variant_after')
    if name is None and source and cfg.get(source):
        name = Path(str(cfg[source])).name
        for suffix in CHECKPOINT_SUFFIXES:
            name = name.removesuffix(suffix)
    if name is None:
        return cfg
    if len(variants) != 1:
        raise ValueError(f'--name {name}: {config_file(cfg)} declares {len(variants)} variants '
                         f'({", ".join(variants)}); --name names the variant of a '
                         f'single-variant experiment (an eval config), so leave it out')
    if not VARIANT_NAME.fullmatch(name):
        raise ValueError(f'variant name {name!r} (from --name or the checkpoint) must be '
                         f'letters, digits, "_", "-" or "."; pass --name NAME')
    return dict(cfg, experiment=dict(experiment, variants={name: next(iter(variants.values()))}))


def with_limit(stage_cfg: dict, limit: Optional[int]) -> dict:
    """``stage_cfg`` with ``limit=limit`` when its stage class takes a ``limit`` argument
    (evaluation stages), so that only those stages' fingerprints change."""
    if limit is None:
        return stage_cfg
    stage_type = stage_cfg['type']
    stage_class = STAGES.get(stage_type) if isinstance(stage_type, str) else stage_type
    if stage_class is None or 'limit' not in inspect.signature(stage_class).parameters:
        return stage_cfg
    return dict(stage_cfg, limit=limit)


def upstream_stages(stage_cfg: dict, earlier: Iterable[str]) -> List[str]:
    """The earlier stages a stage reads: those its arguments name (``init_from='pretrain'``,
    ``checkpoint_from=...``, a list of names). An argument that happens to equal a stage
    name only costs a re-run; a stage reading another must name it in its arguments."""
    earlier = set(earlier)
    named = []
    for key, value in stage_cfg.items():
        for item in (value if isinstance(value, (list, tuple)) else [value]):
            if key not in ('type', 'name') and isinstance(item, str) and item in earlier \
                    and item not in named:
                named.append(item)
    return named


def stage_fingerprint(stage: Stage, stage_cfg: dict, resolved: dict, source: Optional[str],
                      upstream: Mapping[str, dict]) -> str:
    """What a finished stage's reuse depends on: its stage config, the variant config keys it
    reads (all when ``stage.config_keys`` is None), the data source's spec, its outside
    inputs and the manifest entries of the stages it reads (new whenever one runs again)."""
    keys = stage.config_keys
    reads = {key: value for key, value in resolved.items() if key not in BOOKKEEPING_KEYS
             and (keys is None or key in keys or key == source)}
    return config_hash(dict(stage=stage_cfg, config=reads, inputs=stage.fingerprint(),
                            upstream=dict(upstream)))


def run_variant(cfg: dict, experiment: str, variant: str, seed: int, work_dir: Path,
                force: bool = False, launcher: str = 'none', device: Optional[str] = None,
                limit: Optional[int] = None,
                times: Optional[List[StageTime]] = None) -> Manifest:
    """Run (or finish) every stage of one (variant, seed); returns its manifest.

    ``limit`` makes the evaluation stages evaluate only the first N items (a smoke run);
    ``times`` (a list) gets one :class:`StageTime` per stage.
    """
    times = [] if times is None else times
    resolved = resolved_variant_config(cfg, variant)
    source = data_source_name(variant_config(cfg, variant).get('data_root'))
    # Absolute, so that paths stages hand on (corpora, checkpoints) hold from any folder.
    variant_dir = Path(work_dir).resolve() / variant / f'seed_{seed}'
    manifest = Manifest(variant_dir)
    barrier()  # every rank has read the manifest before rank 0 writes it again
    ctx = StageContext(experiment=experiment, variant=variant, seed=seed, cfg=resolved,
                       work_dir=variant_dir, manifest=manifest, launcher=launcher,
                       recorder=record_evaluation)
    if device:
        ctx.device = device
    finished: List[str] = []
    for stage_cfg in resolve_references(cfg['experiment']['stages'], resolved):
        stage_cfg = with_limit(stage_cfg, limit)
        stage = STAGES.build(stage_cfg)
        upstream = {name: run_identity(manifest.stages[name])
                    for name in upstream_stages(stage_cfg, finished)}
        fingerprint = stage_fingerprint(stage, stage_cfg, resolved, source, upstream)
        finished.append(stage.name)
        if not force and manifest.up_to_date(stage.name, fingerprint):
            print_log(f'[{variant} seed {seed}] {stage.name}: done, reusing its outputs',
                      logger='current')
            times.append(StageTime(variant, seed, stage.name, REUSED, 0.0))
            continue
        if manifest.done(stage.name):
            print_log(f'[{variant} seed {seed}] {stage.name}: its config, inputs or a stage it '
                      f'reads changed (or --force): running it afresh', logger='current')
            clear_stage_dir(variant_dir / stage.name)
        twin = None if force or not stage.shareable else \
            finished_twin(variant_dir, stage.name, fingerprint)
        if twin is not None:
            started = time.perf_counter()
            copy_finished_stage(twin, variant_dir, stage.name, manifest)
            print_log(f'[{variant} seed {seed}] {stage.name}: the same stage finished in '
                      f'{twin.parent.name}: copied from there', logger='current')
            times.append(StageTime(variant, seed, stage.name, COPIED,
                                   time.perf_counter() - started))
            continue
        print_log(f'[{variant} seed {seed}] {stage.name}: running', logger='current')
        started = time.perf_counter()
        outputs = stage.run(ctx)
        seconds = time.perf_counter() - started
        manifest.mark_done(stage.name, outputs, seconds, fingerprint)
        times.append(StageTime(variant, seed, stage.name, RAN, seconds))
    return manifest


def run_identity(entry: dict) -> dict:
    """What a later stage's fingerprint takes from a finished stage it reads: which inputs
    made it and which run (a stage that ran again, even unchanged, re-runs its readers)."""
    return dict(fingerprint=entry.get('fingerprint'), run_id=entry.get('run_id'))


def finished_twin(variant_dir: Path, stage: str, fingerprint: str) -> Optional[Path]:
    """The work dir of another variant, same seed, where ``stage`` finished with
    ``fingerprint`` (None when there is none)."""
    for other in sorted(variant_dir.parent.parent.glob(f'*/{variant_dir.name}')):
        if other != variant_dir and (other / 'manifest.json').is_file() and \
                Manifest(other).up_to_date(stage, fingerprint):
            return other
    return None


def copy_finished_stage(twin: Path, variant_dir: Path, stage: str, manifest: Manifest) -> None:
    """Copy ``stage``'s folder from the ``twin`` work dir and record it as finished here, its
    output paths moved to this work dir and its run id kept (rank 0 copies; all wait)."""
    entry = Manifest(twin).stages[stage]
    if is_main_process() and (twin / stage).is_dir():
        shutil.copytree(twin / stage, variant_dir / stage, dirs_exist_ok=True)
    barrier()
    manifest.mark_done(stage, moved_paths(entry['outputs'], str(twin / stage),
                                          str(variant_dir / stage)),
                       entry['wall_time_s'], entry['fingerprint'], run_id=entry['run_id'],
                       copied_from=str(twin / stage))


def moved_paths(value, old_prefix: str, new_prefix: str):
    """``value`` (outputs: nested dicts/lists) with strings under ``old_prefix`` moved to
    ``new_prefix``."""
    if isinstance(value, dict):
        return {key: moved_paths(item, old_prefix, new_prefix) for key, item in value.items()}
    if isinstance(value, list):
        return [moved_paths(item, old_prefix, new_prefix) for item in value]
    if isinstance(value, str) and (value == old_prefix or value.startswith(old_prefix + os.sep)):
        return new_prefix + value[len(old_prefix):]
    return value


def clear_stage_dir(stage_dir: Path) -> None:
    """Remove a finished stage's files before it runs again (rank 0 removes; all wait, so no
    rank writes into the folder before it is gone).

    Otherwise a training stage would "resume" its finished run and train nothing, and an
    old ``best_*.pth`` could outlive the new run.
    """
    if is_main_process() and stage_dir.is_dir():
        shutil.rmtree(stage_dir)
    barrier()


def run_experiment(cfg: dict, work_dir: Path, variants: Optional[Iterable[str]] = None,
                   seeds: Optional[Iterable[int]] = None, force: bool = False,
                   launcher: str = 'none', leaderboard_dir: Optional[Path] = None,
                   device: Optional[str] = None, limit: Optional[int] = None,
                   jobs: int = 1, job_base: Sequence[str] = ()) -> Optional[Path]:
    """Run the chosen variants and seeds in order, then regenerate the leaderboard.

    With a ``launcher`` other than ``'none'`` the process group is joined first (the
    config's ``env_cfg.dist_cfg``), so that rank 0's file work (clearing a stage's folder,
    writing the manifest and the board) is fenced by barriers from the first stage on.
    With ``jobs`` above 1 the runs are dealt among ``jobs`` child processes started from
    ``job_base`` (``harness/run.py CONFIG`` and the options every run shares, see
    :func:`harness.variant_jobs.job_command`).

    Returns the leaderboard path (``None`` when no records exist yet), on every rank.
    """
    experiment = cfg['experiment']['name']
    chosen = list(variants or variant_names(cfg))
    runs = [(variant, seed) for variant in chosen
            for seed in (seeds or cfg['experiment'].get('seeds', [0]))]
    check_experiment(cfg, chosen)
    started = time.perf_counter()
    if jobs > 1 and len(runs) > 1:
        if launcher != 'none':
            raise ValueError(f'--jobs {jobs} shares the runs among processes on this '
                             f'machine; with --launcher {launcher} the ranks split each run '
                             f'instead: leave --jobs out')
        groups = run_groups(runs, jobs)
        times = run_variant_jobs(child_jobs(groups, work_dir, job_base))
        where = f'{len(groups)} processes'
    else:
        init_distributed(launcher, (cfg.get('env_cfg') or {}).get('dist_cfg'))
        times = []
        for variant, seed in runs:
            run_variant(cfg, experiment, variant, seed, work_dir, force, launcher, device,
                        limit, times)
        where = 'this process'
    print_log(f'Stage times of this run ({experiment}):\n{stage_time_table(times)}\n'
              f'wall: {time.perf_counter() - started:.1f} s in {where}', logger='current')
    board = [write_experiment_board(cfg, work_dir, leaderboard_dir) if is_main_process()
             else None]
    broadcast_object_list(board)  # rank 0 wrote it; the others wait and learn its path
    return board[0]


def child_jobs(groups: List[List[tuple]], work_dir: Path,
               job_base: Sequence[str]) -> List[VariantJob]:
    """One child per group of runs, its job file (``<work_dir>/.jobs/<n>.json``) written."""
    jobs = []
    for index, group in enumerate(groups):
        job_file = Path(work_dir).resolve() / '.jobs' / f'{index + 1}.json'
        write_job_file(job_file, group)
        jobs.append(VariantJob(f'job {index + 1}/{len(groups)}', group,
                               job_command(job_base, job_file), job_file))
    return jobs


def run_variant_job(cfg: dict, work_dir: Path, job_file: Path, force: bool = False,
                    device: Optional[str] = None, limit: Optional[int] = None) -> None:
    """A ``--jobs`` child: every stage of each run its job file lists, one after another,
    then the stage times into the job file; the parent prints them and writes the board."""
    runs = job_runs(job_file)
    check_experiment(cfg, list(dict.fromkeys(variant for variant, _ in runs)))
    times: List[StageTime] = []
    for variant, seed in runs:
        run_variant(cfg, cfg['experiment']['name'], variant, seed, work_dir, force,
                    device=device, limit=limit, times=times)
    finish_job_file(job_file, times)


def check_experiment(cfg: dict, variants: Iterable[str]) -> None:
    """Refuse unknown variant names and impossible values (in each chosen variant's config
    and stages) before anything runs, so no variant runs to be followed by an error."""
    declared = variant_names(cfg)
    unknown = [name for name in variants if name not in declared]
    if unknown:
        raise KeyError(f'--variant {", ".join(unknown)}: {config_file(cfg)} declares no such '
                       f'variant{nearest_names(unknown[0], declared)}; its variants are '
                       f'{", ".join(declared)}')
    for variant in variants:
        resolved = resolved_variant_config(cfg, variant)
        where = f'{config_file(cfg)} (variant {variant!r})'
        check_values(resolved, where)
        for stage_cfg in resolve_references(cfg['experiment']['stages'], resolved):
            check_values(stage_cfg, f'{where}, stage {stage_cfg.get("name")!r}')


def board_dir(cfg: dict, work_dir: Path, override: Optional[Path] = None) -> Path:
    """Where the experiment's board goes: ``override`` (``--board-dir``), else the config's
    ``leaderboard_dir`` (which may refer to ``'${work_dir}'``), else ``leaderboards/``."""
    if override is not None:
        return Path(override)
    located = dict(cfg, work_dir=str(work_dir))  # only for this lookup: not in fingerprints
    return Path(resolve_references(cfg.get('leaderboard_dir', 'leaderboards'), located))


def write_experiment_board(cfg: dict, work_dir: Path,
                           leaderboard_dir: Optional[Path] = None) -> Optional[Path]:
    """Regenerate the experiment's board (``<experiment>.md`` + plot, in :func:`board_dir`)
    from the work dir's records."""
    experiment = cfg['experiment']['name']
    records = [r for r in collect_records([work_dir]) if r.experiment == experiment]
    if not records:
        return None
    out_dir = board_dir(cfg, work_dir, leaderboard_dir)
    command = shlex.join(['python', 'harness/run.py', *sys.argv[1:]])
    spec = resolve_references(cfg.get('leaderboard'), cfg)
    board = write_leaderboard(experiment, records, spec, out_dir, command=command)
    print_log(f'leaderboard written: {board}', logger='current')
    return board
