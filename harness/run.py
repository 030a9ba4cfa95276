"""Command line entry point: ``python harness/run.py CONFIG [options]``.

A config with an ``experiment`` section runs its variants x seeds x stages and writes the
leaderboard; any other config is an ordinary mmengine training config (train, then test
when it has a test loop). A user's mistake (a missing file, a bad option, a config value
our code refuses) ends in one line, ``harness/run.py: error: ...``, and exit code 2;
``--debug`` shows the traceback instead.
"""
import argparse
import gc
import pprint
import re
import sys
from pathlib import Path

if __package__ in (None, ''):  # run as a script: import from the repository root, and keep
    # this folder's modules (config.py, hooks.py...) from shadowing top-level imports
    sys.path[0] = str(Path(__file__).resolve().parents[1])

# The imports below leave some 500,000 long-lived objects: garbage collection while they
# load is wasted work (a fifth of their time), and frozen afterwards, later collections skip
# them (1.5 s less per process on the main job's 2-core CPU).
_COLLECTING = gc.isenabled()
gc.disable()
from harness.config import (DictAction, check_values, config_file, load_config,  # noqa: E402
                            resolve_config, resolve_references)
from harness.distributed import LAUNCHERS, leave_distributed  # noqa: E402
from harness.experiment import (board_dir, rename_variant,  # noqa: E402
                                resolved_variant_config, run_experiment, run_variant_job,
                                variant_names, with_limit, write_experiment_board)
from harness.runner_builder import build_runner  # noqa: E402
from harness.variant_jobs import VariantJobFailed  # noqa: E402
from harness.stages import load_weights  # noqa: E402
gc.freeze()
if _COLLECTING:
    gc.enable()

PROG = 'harness/run.py'
CONFIGS_DIR = Path(__file__).resolve().parents[1] / 'configs'
# Exceptions that carry a message meant for the user (our code raises them naming the fix).
USER_ERRORS = (ValueError, KeyError, FileNotFoundError, VariantJobFailed)
OPTION_KEY = re.compile(r'[A-Za-z_]\w*(\.\w+)*')

EXAMPLES = """\
examples:
  evaluate a checkpoint (the board goes to the work dir; the row is named after the file):
    python harness/run.py configs/eval_caption_coco.py --cfg-options \\
        checkpoint=/models/model_base_caption_capfilt_large.pth data_root=/data/coco \\
        bert_dir=/models/bert-base-uncased
  smoke-test it on the first 20 images, printing the resolved config first:
    python harness/run.py configs/eval_caption_coco.py --print-config --cfg-options ...
    python harness/run.py configs/eval_caption_coco.py --limit 20 --cfg-options ...
  run an ablation (every variant x seed; the board goes to leaderboards/):
    python harness/run.py configs/ablation_sharing.py --seed 0 --seed 1
  regenerate a board from stored results, without running anything:
    python harness/run.py configs/ablation_sharing.py --leaderboard
"""


def shipped_configs() -> str:
    """``configs/*.py`` on disk, each with the first line of its leading comment."""
    lines = ['shipped configs (configs/*.py):']
    for path in sorted(CONFIGS_DIR.glob('*.py')):
        first = next((line.lstrip('# ').strip() for line in
                      path.read_text(encoding='utf-8').splitlines() if line.startswith('#')), '')
        lines.append(f'  {path.name:30} {first}')
    return '\n'.join(lines)


class KeyValueAction(DictAction):
    """``--cfg-options KEY=VALUE ...``, refusing other forms with the ``KEY=VALUE`` fix
    (mmengine's DictAction would fail on ``KEY VALUE`` with a bare traceback)."""

    def __call__(self, parser, namespace, values, option_string=None):
        for index, item in enumerate(values):
            key = item.split('=', 1)[0]
            if '=' not in item:
                fix = (f'{item}={values[index + 1]}' if index + 1 < len(values)
                       else f'{item}=VALUE')
                parser.error(f'{option_string} takes KEY=VALUE pairs, got {item!r} without '
                             f'"="; write {fix}')
            if not OPTION_KEY.fullmatch(key):
                parser.error(f'{option_string}: {key!r} (in {item!r}) is not a config key; '
                             f'use dotted names such as model.sharing=none')
        super().__call__(parser, namespace, values, option_string)
        namespace.cfg_option_items = [*namespace.cfg_option_items, *values]  # for --jobs


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f'expected a whole number >= 1, got {text!r}')
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    """The CLI's parser (its help ends with examples and the shipped configs)."""
    parser = argparse.ArgumentParser(
        prog=PROG, description='Run a BLIP harness config or experiment.',
        epilog=EXAMPLES + '\n' + shipped_configs(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='path of a Python config (configs/...)')
    parser.add_argument('--work-dir', help='output directory (default work_dirs/<config name>)')
    parser.add_argument('--cfg-options', nargs='+', action=KeyValueAction, default={},
                        metavar='KEY=VALUE',
                        help='override config keys, e.g. model.sharing=none train_cfg.max_epochs=2')
    parser.add_argument('--launcher', choices=LAUNCHERS,
                        default='none', help='distributed launcher')
    parser.add_argument('--resume', action='store_true',
                        help='resume from the last checkpoint in the work dir')
    parser.add_argument('--seed', type=int, action='append',
                        help='random seed (repeat for several seeds in an experiment)')
    parser.add_argument('--variant', action='append',
                        help='run only this variant of an experiment (repeatable)')
    parser.add_argument('--name', help='name the (single) variant NAME: the board row and '
                        'work-dir folder (eval configs default to the checkpoint\'s name)')
    parser.add_argument('--force', action='store_true',
                        help='re-run finished experiment stages instead of reusing them')
    parser.add_argument('--device', help='device for evaluation stages (default: cuda if present)')
    parser.add_argument('--limit', type=positive_int, metavar='N',
                        help='smoke run: evaluation stages evaluate only the first N '
                             'images/items of their dataset (records and board say so)')
    parser.add_argument('--board-dir', type=Path, metavar='DIR',
                        help='write the experiment board here (default: the config\'s '
                             'leaderboard_dir: leaderboards/, or the work dir for eval configs)')
    parser.add_argument('--leaderboard', action='store_true',
                        help='only regenerate the experiment leaderboard from stored results')
    parser.add_argument('--print-config', action='store_true',
                        help='print the fully resolved config (every chosen variant of an '
                             'experiment) and exit without running anything')
    parser.add_argument('--debug', action='store_true',
                        help='show the full traceback of an error instead of one line')
    parser.add_argument('--jobs', type=positive_int, metavar='N',
                        help='share the (variant, seed) runs among N processes working at '
                             'once (same scores; default: the config\'s experiment.jobs, '
                             'else 1)')
    parser.add_argument('--variant-job', type=Path, help=argparse.SUPPRESS)  # a --jobs child
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    parser.set_defaults(cfg_option_items=[])
    return parser


def parse_args(argv=None):
    """The CLI's arguments."""
    return build_parser().parse_args(argv)


def run_plain_config(cfg: dict, args, work_dir: Path):
    """Train (and test, when configured) an ordinary mmengine config."""
    cfg = resolve_config(cfg)
    check_values(cfg, config_file(cfg))
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


def format_config(cfg: dict) -> str:
    """A resolved config as ``key = value`` lines, readable as a Python config."""
    return '\n'.join(f'{key} = {pprint.pformat(value, width=100, sort_dicts=False)}'
                     for key, value in cfg.items() if key != '_config_file')


def config_text(cfg: dict, args, work_dir: Path) -> str:
    """The resolved config: the plain config, or each chosen variant of an experiment with
    its resolved stages (as they would run, ``--limit`` included) and its board's path."""
    lines = [f'# {cfg["_config_file"]}, resolved (work dir {work_dir})']
    if 'experiment' not in cfg:
        return '\n'.join([*lines, format_config(resolve_config(cfg))])
    experiment = cfg['experiment']
    lines.append(f'# board: {board_dir(cfg, work_dir, args.board_dir) / experiment["name"]}.md')
    for variant in args.variant or variant_names(cfg):
        resolved = resolved_variant_config(cfg, variant)
        stages = [with_limit(stage, args.limit)
                  for stage in resolve_references(experiment['stages'], resolved)]
        lines += ['', f'# ---- variant {variant!r}, seeds '
                      f'{args.seed or experiment.get("seeds", [0])}',
                  format_config(dict(resolved, experiment=dict(name=experiment['name'],
                                                               stages=stages)))]
    return '\n'.join(lines)


def run(args) -> int:
    """Run the parsed command line; returns the exit code."""
    if not Path(args.config).is_file():
        raise FileNotFoundError(f'config file {args.config} does not exist; the shipped '
                                f'configs are listed by {PROG} --help')
    cfg = load_config(args.config, args.cfg_options)
    work_dir = Path(args.work_dir or cfg.get('work_dir') or
                    Path('work_dirs') / Path(args.config).stem)
    if 'experiment' not in cfg:
        used = [option for option, value in [('--variant', args.variant), ('--name', args.name),
                                             ('--leaderboard', args.leaderboard),
                                             ('--limit', args.limit),
                                             ('--board-dir', args.board_dir)] if value]
        if used:
            raise ValueError(f'{args.config} declares no `experiment`; {", ".join(used)} '
                             f'apply to experiment configs only')
    else:
        cfg = rename_variant(cfg, args.name)
    if args.print_config:
        print(config_text(cfg, args, work_dir))
        return 0
    if 'experiment' not in cfg:
        run_plain_config(cfg, args, work_dir)
        return 0
    if args.leaderboard:
        board = write_experiment_board(cfg, work_dir, args.board_dir)
        if board is None:
            raise FileNotFoundError(f'no results of {cfg["experiment"]["name"]} under '
                                    f'{work_dir}; run the experiment first (or pass its '
                                    f'--work-dir)')
        return 0
    if args.variant_job:
        run_variant_job(cfg, work_dir, args.variant_job, force=args.force, device=args.device,
                        limit=args.limit)
        return 0
    run_experiment(cfg, work_dir, variants=args.variant, seeds=args.seed, force=args.force,
                   launcher=args.launcher, leaderboard_dir=args.board_dir,
                   device=args.device, limit=args.limit, jobs=job_count(cfg, args),
                   job_base=job_base(args, work_dir))
    return 0


def job_count(cfg: dict, args) -> int:
    """How many processes share the runs: ``--jobs``, else the config's ``experiment.jobs``,
    else 1."""
    jobs = args.jobs or cfg['experiment'].get('jobs', 1)
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f'{config_file(cfg)}: experiment.jobs={jobs!r} must be a whole '
                         f'number >= 1 (processes sharing the runs)')
    return jobs


def job_base(args, work_dir: Path) -> list:
    """``harness/run.py CONFIG`` and the options each ``--jobs`` child shares with this run
    (each child adds its job file)."""
    base = [str(Path(__file__).resolve()), args.config, '--work-dir', str(work_dir.resolve())]
    base += [flag for flag, on in (('--force', args.force), ('--debug', args.debug)) if on]
    for option, value in (('--device', args.device), ('--limit', args.limit),
                          ('--name', args.name)):
        if value is not None:
            base += [option, str(value)]
    if args.cfg_option_items:  # last: it takes every value up to the next option
        base += ['--cfg-options', *args.cfg_option_items]
    return base


def error_message(error: BaseException) -> str:
    """The one-line message of a user error (a KeyError's without the quotes repr adds)."""
    text = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    return ' '.join(str(text).split()) or type(error).__name__


def main(argv=None) -> int:
    """Parse the CLI, then run the config or experiment; returns the exit code."""
    args = parse_args(argv)
    try:
        return run(args)
    except USER_ERRORS as error:
        if args.debug:
            raise
        print(f'{PROG}: error: {error_message(error)} (--debug shows the traceback)',
              file=sys.stderr)
        return 2
    finally:
        leave_distributed()


if __name__ == '__main__':
    sys.exit(main())
