# Short AdamW + cosine schedules sized for ToyWorld on a 2-core CPU.
pretrain_epochs = 2
finetune_epochs = 1
batch_size = 32
finetune_batch_size = '${batch_size}'
pretrain_optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05))
finetune_optim_wrapper = dict(optimizer=dict(type='AdamW', lr=5e-4, weight_decay=0.05))
pretrain_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, begin=0,
                           end='${pretrain_epochs}', eta_min=1e-5, convert_to_iter_based=True)]
finetune_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, begin=0,
                           end='${finetune_epochs}', eta_min=1e-5, convert_to_iter_based=True)]
