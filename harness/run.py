"""Command line entry point: ``python harness/run.py CONFIG [options]``.

A config with an ``experiment`` section runs its variants x seeds x stages and writes the
leaderboard; any other config is an ordinary mmengine training config (train, then test
when it has a test loop).
"""
import argparse
import sys
from pathlib import Path

if __package__ in (None, ''):  # run as a script: import from the repository root, and keep
    # this folder's modules (config.py, hooks.py...) from shadowing top-level imports
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from harness.config import DictAction, load_config, resolve_config  # noqa: E402
from harness.experiment import run_experiment, write_experiment_board  # noqa: E402
from harness.runner_builder import build_runner  # noqa: E402
from harness.stages import load_weights  # noqa: E402


def parse_args(argv=None):
    """The CLI's arguments."""
    parser = argparse.ArgumentParser(description='Run a BLIP harness config or experiment.')
    parser.add_argument('config', help='path of a Python config (configs/...)')
    parser.add_argument('--work-dir', help='output directory (default work_dirs/<config name>)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config keys, e.g. model.sharing=none train_cfg.max_epochs=2')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='distributed launcher')
    parser.add_argument('--resume', action='store_true',
                        help='resume from the last checkpoint in the work dir')
    parser.add_argument('--seed', type=int, action='append',
                        help='random seed (repeat for several seeds in an experiment)')
    parser.add_argument('--variant', action='append',
                        help='run only this variant of an experiment (repeatable)')
    parser.add_argument('--force', action='store_true',
                        help='re-run finished experiment stages instead of reusing them')
    parser.add_argument('--device', help='device for evaluation stages (default: cuda if present)')
    parser.add_argument('--leaderboard', action='store_true',
                        help='only regenerate the experiment leaderboard from stored results')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run_plain_config(cfg: dict, args, work_dir: Path):
    """Train (and test, when configured) an ordinary mmengine config."""
    cfg = resolve_config(cfg)
    cfg.update(work_dir=str(work_dir), launcher=args.launcher, resume=args.resume)
    if args.seed:
        cfg['randomness'] = dict(cfg.get('randomness', {}), seed=args.seed[0])
    runner = build_runner(cfg)
    if cfg.get('init_checkpoint') and not args.resume:
        load_weights(runner.model, cfg['init_checkpoint'], runner.logger)
    if cfg.get('train_dataloader'):
        runner.train()
    if cfg.get('test_dataloader'):
        runner.test()


def main(argv=None) -> int:
    """Parse the CLI, then run the config or experiment; returns the exit code."""
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    work_dir = Path(args.work_dir or cfg.get('work_dir') or
                    Path('work_dirs') / Path(args.config).stem)
    if 'experiment' not in cfg:
        if args.variant or args.leaderboard:
            raise SystemExit(f'{args.config} declares no `experiment`; --variant and '
                             f'--leaderboard apply to experiment configs only')
        run_plain_config(cfg, args, work_dir)
        return 0
    if args.leaderboard:
        board = write_experiment_board(cfg, work_dir)
        if board is None:
            raise SystemExit(f'no results of {cfg["experiment"]["name"]} under {work_dir}; '
                             f'run the experiment first')
        return 0
    run_experiment(cfg, work_dir, variants=args.variant, seeds=args.seed, force=args.force,
                   launcher=args.launcher, device=args.device)
    return 0


if __name__ == '__main__':
    sys.exit(main())
