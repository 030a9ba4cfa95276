# BLIP's VQA protocol after pre-training: the VQA model (BlipVQA: question encoder grounded
# on the image, answer decoder on the question) starts from the pre-trained encoder and
# decoder (train_vqa.py), is fine-tuned with BLIP's weighted answer loss, then answers the
# test questions by ranking the answer list (k=128, BLIP's VQAv2 default) and by generating
# (beam 3, max 10, min 1); VQAv2 scored by the official accuracy, GQA by exact match, each
# beside the majority-answer baseline. Inherit after pretrain_finetune_eval.py (its
# pre-training stage) and set vqa_model, the VQA datasets and vqa_epochs.
# The tiny ToyWorld schedule (BLIP: AdamW 2e-5, weight decay 0.05, cosine, 10 epochs).
vqa_epochs = 15
vqa_batch_size = 32
vqa_optim_wrapper = dict(optimizer=dict(type='AdamW', lr=3e-4, weight_decay=0.05))
vqa_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end='${vqa_epochs}',
                      eta_min=0.0, convert_to_iter_based=True)]
vqa_finetune_stage = dict(
    type='TrainStage', name='finetune_vqa', init_from='pretrain', runner=dict(
        model='${vqa_model}',
        train_dataloader=dict(num_workers=0, batch_size='${vqa_batch_size}',
                              sampler=dict(type='DefaultSampler', shuffle=True),
                              # mmengine looks collate functions up in its root registry:
                              # the scope prefix finds ours.
                              collate_fn=dict(type='harness.vqa_train_collate'),
                              dataset='${vqa_train_dataset}'),
        train_cfg=dict(by_epoch=True, max_epochs='${vqa_epochs}'),
        optim_wrapper='${vqa_optim_wrapper}', param_scheduler='${vqa_scheduler}',
        custom_hooks=[dict(type='EpochSeedHook')]))
vqa_eval_stages = [
    dict(type='EvaluateStage', name=f'eval_{task}_{method}', task=task,
         checkpoint_from='finetune_vqa', dataset='${' + task + '_test_dataset}',
         dataset_name=f'toyworld_{dataset} · {method}', split=split, model='${vqa_model}',
         options=dict(method=method, batch_size='${eval_batch_size}',
                      prior_annotation_file='${vqa_prior_file}'))
    for task, dataset, split in (('vqa', 'vqav2', 'test'), ('gqa', 'gqa', 'testdev'))
    for method in ('rank', 'generate')]
