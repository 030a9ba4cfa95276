# BLIP's pre-training / fine-tuning schedules (per-GPU batch; scale with --launcher pytorch).
pretrain_epochs = 20
finetune_epochs = 5
batch_size = 75
pretrain_optim_wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16',
                              optimizer=dict(type='AdamW', lr=3e-4, weight_decay=0.05))
finetune_optim_wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16',
                              optimizer=dict(type='AdamW', lr=1e-5, weight_decay=0.05))
pretrain_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=3000),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end='${pretrain_epochs}',
         eta_min=1e-6, convert_to_iter_based=True)]
finetune_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, begin=0,
                           end='${finetune_epochs}', eta_min=0, convert_to_iter_based=True)]
