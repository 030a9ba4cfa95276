# BLIP's pre-training / fine-tuning schedules (per-GPU batches; scale with --launcher pytorch).
# Pre-training (configs/pretrain.yaml, pretrain.py): AdamW lr 3e-4, weight decay 0.05, batch 75,
# 20 epochs; a linear warm-up from warmup_lr 1e-6 to 3e-4 over 3000 iterations
# (warmup_lr_schedule), then lr = max(min_lr, 3e-4 * 0.9**epoch) per epoch (step_lr_schedule;
# min_lr 1e-6 never binds within 20 epochs: 3e-4 * 0.9**19 = 4e-5). BLIP warms up in epoch 0
# only; with an epoch shorter than 3000 iterations it jumps to 3e-4 * 0.9 at epoch 1, while
# LinearLR here finishes the ramp (BLIP's corpora give epochs far longer than 3000 steps).
# Fine-tuning (configs/caption_coco.yaml, retrieval_coco.yaml): AdamW lr 1e-5, weight decay
# 0.05, batch 32, 5 epochs (captioning; retrieval: 6), cosine_lr_schedule set once per EPOCH:
# lr = 1e-5 * 0.5 * (1 + cos(pi * epoch / max_epoch)) (min_lr 0).
pretrain_epochs = 20
finetune_epochs = 5
batch_size = 75
finetune_batch_size = 32
pretrain_optim_wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16',
                              optimizer=dict(type='AdamW', lr=3e-4, weight_decay=0.05))
finetune_optim_wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16',
                              optimizer=dict(type='AdamW', lr=1e-5, weight_decay=0.05))
pretrain_scheduler = [
    # mmengine's LinearLR reaches end_factor at iteration end - 1: 3e-4 from iteration 3000.
    dict(type='LinearLR', start_factor=1e-6 / 3e-4, end_factor=1.0, by_epoch=False, begin=0,
         end=3001),
    dict(type='ExponentialLR', gamma=0.9, by_epoch=True, begin=0, end='${pretrain_epochs}')]
finetune_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, begin=0,
                           end='${finetune_epochs}', eta_min=0, convert_to_iter_based=False)]
