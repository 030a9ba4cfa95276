# A plain mmengine config: pre-train a tiny BLIP (ITC + ITM + LM) on the ToyWorld
# pre-training corpus (human pairs + noisy web pairs).
_base_ = [
    './_base_/default_runtime.py',
    './_base_/models/blip_tiny.py',
    './_base_/datasets/toyworld.py',
    './_base_/schedules/toy_cpu.py',
]

model = dict(losses=('itc', 'itm', 'lm'), max_text_length=30)
train_dataloader = dict(
    batch_size=48, num_workers=0, dataset='${pretrain_dataset}',
    sampler=dict(type='DefaultSampler', shuffle=True), collate_fn=dict(type='default_collate'))
train_cfg = dict(by_epoch=True, max_epochs=2)
optim_wrapper = '${pretrain_optim_wrapper}'
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=2, eta_min=1e-5,
                        convert_to_iter_based=True)]
# BLIP ramps ITC's alpha over the first 2 pre-training epochs (pretrain.py).
custom_hooks = [dict(type='EpochSeedHook'), dict(type='AlphaWarmupHook', warmup_epochs=2)]
