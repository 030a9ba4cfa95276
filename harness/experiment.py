"""Run an experiment: every variant x seed through the stage list, then the leaderboard.

An experiment config holds, besides an ordinary model/data config:

* ``experiment = dict(name=..., seeds=[0], variants=dict(NAME=overrides, ...), stages=[...])``
  where each variant's overrides are merged into the config and each stage is a
  ``STAGES`` config (``dict(type='TrainStage', name='pretrain', ...)``);
* ``leaderboard = dict(...)`` - the board spec (see :mod:`harness.leaderboard`).

Work dirs: ``<work_dir>/<variant>/seed_<seed>/<stage>/``; a (variant, seed) whose
manifest marks every stage done is skipped unless ``force``.
"""
import shlex
import sys
import time
from pathlib import Path
from typing import Iterable, List, Optional

from mmengine.logging import print_log

from harness.config import deep_merge, resolve_data_roots, resolve_references
from harness.registry import STAGES
from harness.stages import Manifest, StageContext


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


def run_variant(cfg: dict, experiment: str, variant: str, seed: int, work_dir: Path,
                force: bool = False, launcher: str = 'none', device: Optional[str] = None) -> Manifest:
    """Run (or finish) every stage of one (variant, seed); returns its manifest."""
    resolved = resolve_data_roots(variant_config(cfg, variant))
    # Absolute, so that paths stages hand on (corpora, checkpoints) hold from any folder.
    variant_dir = Path(work_dir).resolve() / variant / f'seed_{seed}'
    manifest = Manifest(variant_dir)
    ctx = StageContext(experiment=experiment, variant=variant, seed=seed, cfg=resolved,
                       work_dir=variant_dir, manifest=manifest, launcher=launcher)
    if device:
        ctx.device = device
    for stage_cfg in resolve_references(cfg['experiment']['stages'], resolved):
        stage = STAGES.build(stage_cfg)
        fingerprint = stage.fingerprint()
        if manifest.up_to_date(stage.name, fingerprint) and not force:
            print_log(f'[{variant} seed {seed}] {stage.name}: done, reusing its outputs',
                      logger='current')
            continue
        print_log(f'[{variant} seed {seed}] {stage.name}: running', logger='current')
        started = time.perf_counter()
        outputs = stage.run(ctx)
        manifest.mark_done(stage.name, outputs, time.perf_counter() - started, fingerprint)
    return manifest


def run_experiment(cfg: dict, work_dir: Path, variants: Optional[Iterable[str]] = None,
                   seeds: Optional[Iterable[int]] = None, force: bool = False,
                   launcher: str = 'none', leaderboard_dir: Optional[Path] = None,
                   device: Optional[str] = None) -> Optional[Path]:
    """Run the chosen variants and seeds in order, then regenerate the leaderboard.

    Returns the leaderboard path (``None`` when no records exist yet).
    """
    experiment = cfg['experiment']['name']
    chosen = list(variants or variant_names(cfg))
    for variant in chosen:
        for seed in (seeds or cfg['experiment'].get('seeds', [0])):
            run_variant(cfg, experiment, variant, seed, work_dir, force, launcher, device)
    return write_experiment_board(cfg, work_dir, leaderboard_dir)


def write_experiment_board(cfg: dict, work_dir: Path,
                           leaderboard_dir: Optional[Path] = None) -> Optional[Path]:
    """Regenerate ``<leaderboard_dir>/<experiment>.md`` (+ plot) from the work dir's records."""
    from harness.leaderboard import write_leaderboard  # noqa: PLC0415
    from harness.results import collect_records  # noqa: PLC0415
    experiment = cfg['experiment']['name']
    records = [r for r in collect_records([work_dir]) if r.experiment == experiment]
    if not records:
        return None
    out_dir = leaderboard_dir or Path(cfg.get('leaderboard_dir', 'leaderboards'))
    command = shlex.join(['python', 'harness/run.py', *sys.argv[1:]])
    spec = resolve_references(cfg.get('leaderboard'), cfg)
    board = write_leaderboard(experiment, records, spec, out_dir, command=command)
    print_log(f'leaderboard written: {board}', logger='current')
    return board
