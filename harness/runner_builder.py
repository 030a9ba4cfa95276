"""Build mmengine Runners the harness way (weights-only-safe checkpoints, our scope)."""
from mmengine.config import Config
from mmengine.runner import Runner

from harness.core.safe_globals import register_mmengine_safe_globals


def build_runner(cfg: dict):
    """An mmengine ``Runner`` for ``cfg`` whose checkpoints load with ``weights_only=True``.

    Adds :class:`harness.safe_load.PlainCheckpointMetaHook` to the custom hooks (once) so
    ``--resume`` works on torch >= 2.6 without allow-listing unsafe globals.
    """
    register_mmengine_safe_globals()
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(h.get('type') == 'PlainCheckpointMetaHook' for h in hooks):
        hooks.append(dict(type='PlainCheckpointMetaHook'))
    cfg = dict(cfg, custom_hooks=hooks)
    cfg.setdefault('default_scope', 'harness')
    return Runner.from_cfg(Config(cfg))
