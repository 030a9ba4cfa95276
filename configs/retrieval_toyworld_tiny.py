# A plain mmengine config (no experiment): fine-tune a tiny BLIP for retrieval on ToyWorld
# (ITC + ITM, all captions of an image are positives), validating with BLIP's retrieval
# protocol every epoch and keeping the best checkpoint by mean recall. Start from a
# pre-trained model with --cfg-options init_checkpoint=work_dirs/.../pretrain/epoch_2.pth.
_base_ = [
    './_base_/default_runtime.py',
    './_base_/models/blip_tiny.py',
    './_base_/datasets/toyworld.py',
]

model = dict(losses=('itc', 'itm'), max_text_length=35, image_id_positives=True)
train_dataloader = dict(
    batch_size=32, num_workers=0, dataset='${retrieval_train_dataset}',
    sampler=dict(type='DefaultSampler', shuffle=True), collate_fn=dict(type='default_collate'))
val_dataloader = dict(
    batch_size=64, num_workers=0, dataset='${retrieval_val_dataset}',
    sampler=dict(type='DefaultSampler', shuffle=False), collate_fn=dict(type='default_collate'))
val_evaluator = dict()  # RetrievalValLoop computes its own metrics
train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=1)
val_cfg = dict(type='RetrievalValLoop', k=16)
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=5e-4, weight_decay=0.05))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=2, eta_min=1e-5,
                        convert_to_iter_based=True)]
default_hooks = dict(checkpoint=dict(save_best='retrieval/R_mean', rule='greater'))
# BLIP ramps ITC's alpha over the first fine-tuning epoch only (train_retrieval.py).
custom_hooks = [dict(type='EpochSeedHook'), dict(type='AlphaWarmupHook', warmup_epochs=1)]
