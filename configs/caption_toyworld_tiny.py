# A plain mmengine config (no experiment): fine-tune a tiny BLIP captioner on ToyWorld,
# validating BLEU/CIDEr every epoch and keeping the best checkpoint (by CIDEr + BLEU-4).
# Used by the resume test.
_base_ = [
    './_base_/default_runtime.py',
    './_base_/models/blip_tiny.py',
    './_base_/datasets/toyworld.py',
]

model = dict(losses=('lm',), prompt='a picture of ', max_text_length=40)
train_dataloader = dict(
    batch_size=32, num_workers=0, dataset='${caption_train_dataset}',
    sampler=dict(type='DefaultSampler', shuffle=True), collate_fn=dict(type='default_collate'))
val_dataloader = dict(
    batch_size=64, num_workers=0, dataset='${caption_val_dataset}',
    sampler=dict(type='DefaultSampler', shuffle=False), collate_fn=dict(type='default_collate'))
# A list, because the metric's own `metrics` key would read as an Evaluator's.
val_evaluator = [dict(type='CocoCaptionMetric', metrics=['BLEU', 'CIDEr'],
                      gt_file='${caption_val_gt_file}')]
train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=1)
val_cfg = dict(type='ValLoop')
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=2, eta_min=1e-5,
                        convert_to_iter_based=True)]
# BLIP keeps the epoch of the best CIDEr + BLEU-4 (train_caption.py).
default_hooks = dict(checkpoint=dict(save_best='coco_caption/CIDEr+BLEU-4', rule='greater'))
