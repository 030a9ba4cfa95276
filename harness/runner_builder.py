"""Build mmengine Runners the harness way (weights-only-safe checkpoints, our scope, stopping
on a diverged loss, resuming only from a complete checkpoint)."""
import collections
import logging
from pathlib import Path

from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner import Runner

from harness.checkpoint_files import resume_checkpoint
from harness.distributed import cpu_model_wrapper, init_distributed
from harness.core.safe_globals import register_mmengine_safe_globals

# Hooks every runner gets (once): weights-only-loadable checkpoints (``--resume`` works on
# torch >= 2.6 without allow-listing unsafe globals), a stop at the first non-finite loss, and
# linear layers' weight gradients at one thread, with the same bits, on two-thread CPUs.
ALWAYS_HOOKS = ('PlainCheckpointMetaHook', 'FiniteLossHook', 'OneThreadWeightGradientsHook')
# How many runners of each experiment name this process has built (see distinct_name).
_BUILT_NAMES: collections.Counter = collections.Counter()


def distinct_name(cfg: dict) -> dict:
    """``cfg`` with an experiment name no earlier runner of this process had.

    mmengine keeps one logger, message hub and visualizer per name, and a runner's name is
    ``experiment_name`` plus a timestamp to the second. A stage run again within that second
    (a forced re-run of a seconds-long stage, several runs from one script) would get the
    earlier runner's, whose log folder the re-run has just removed: writing its config there
    fails. The first runner of a name keeps it; the next are numbered (``name.run2``...),
    in the same order on every rank.
    """
    name = cfg.get('experiment_name')
    if name is None:
        return cfg
    _BUILT_NAMES[name] += 1
    count = _BUILT_NAMES[name]
    return cfg if count == 1 else dict(cfg, experiment_name=f'{name}.run{count}')


def choose_resume_checkpoint(cfg: dict) -> dict:
    """``cfg`` with ``--resume`` pointed at a complete checkpoint (``load_from``).

    mmengine resumes from whatever ``last_checkpoint`` names and fails when that file is
    missing or truncated (a crash or a full disk during a save). Here a broken pointer
    falls back to the newest complete ``epoch_*.pth``/``iter_*.pth`` (logged), and with
    none at all training starts afresh instead of failing on every re-run.
    """
    if not cfg.get('resume') or cfg.get('load_from') or not cfg.get('work_dir'):
        return cfg
    path, problem = resume_checkpoint(Path(cfg['work_dir']))
    if problem:
        print_log(problem, logger='current', level=logging.WARNING)
    return dict(cfg, load_from=path, resume=path is not None)


def build_runner(cfg: dict):
    """An mmengine ``Runner`` for ``cfg`` with the harness's hooks and a checked resume.

    Adds :data:`ALWAYS_HOOKS` to the custom hooks (once), numbers a repeated experiment
    name (:func:`distinct_name`) and, when resuming, picks a complete checkpoint
    (:func:`choose_resume_checkpoint`). A multi-process run joins its
    process group here (:func:`harness.distributed.init_distributed`, which also serves
    machines without CUDA) unless it already has.
    """
    register_mmengine_safe_globals()
    init_distributed(cfg.get('launcher', 'none'), (cfg.get('env_cfg') or {}).get('dist_cfg'))
    wrapper = cpu_model_wrapper(cfg)
    if wrapper is not None:
        cfg = dict(cfg, model_wrapper_cfg=wrapper)
    hooks = list(cfg.get('custom_hooks') or [])
    for name in ALWAYS_HOOKS:
        if not any(h.get('type') == name for h in hooks):
            hooks.append(dict(type=name))
    cfg = choose_resume_checkpoint(distinct_name(dict(cfg, custom_hooks=hooks)))
    cfg.setdefault('default_scope', 'harness')
    return Runner.from_cfg(Config(cfg))
