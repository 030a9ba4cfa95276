# Runtime defaults shared by every config: scope, hooks, logging, seeding.
default_scope = 'harness'
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=20),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # Atomic saves: a crash or a full disk while saving keeps the previous checkpoint.
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)
# Per-epoch reseeding makes --resume bit-identical to an uninterrupted run.
custom_hooks = [dict(type='EpochSeedHook')]
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
log_processor = dict(by_epoch=True, window_size=20)
log_level = 'INFO'
randomness = dict(seed=0)
