# Stage list: pre-train (ITC+ITM+LM) -> fine-tune captioning (LM, prompt masked) ->
# evaluate captioning (beam 3) and zero-shot retrieval (ITC top-k re-ranked by ITM).
# '${name}' strings are filled from the variant's config when a stage is built, so the
# datasets, schedule and model come from the configs that inherit this one.
_base_ = ['../default_runtime.py']

retrieval_k = 16  # BLIP: 256 COCO, 128 Flickr/MSRVTT; the ToyWorld test split has 200 images
eval_batch_size = 64
eval_dataset_name = 'toyworld_coco'
train_loader = dict(num_workers=0, sampler=dict(type='DefaultSampler', shuffle=True),
                    collate_fn=dict(type='default_collate'))
# Initial weights of the pre-training stage (DESIGN: BLIP starts the ViT from DeiT/ImageNet
# and the text side from bert-base-uncased), dict(vision=dict(type=..., path=...),
# text=dict(...)); a part left out starts from random weights, which configs with
# init_required=True refuse unless the part says type='random'.
pretrain_init = dict()
init_required = False
eval_loader = dict(num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
                   collate_fn=dict(type='default_collate'))
# ITC's distillation weight ramps up over 2 epochs in pre-training (BLIP pretrain.py) and over
# the first epoch in retrieval fine-tuning (train_retrieval.py).
pretrain_hooks = [dict(type='EpochSeedHook'), dict(type='AlphaWarmupHook', warmup_epochs=2)]
# The pre-training loop. On one GPU, `pretrain_train_cfg = dict(type='GraphedTrainLoop')` in an
# inheriting config replays each step as one CUDA graph (backbones/graphed_loop.py; its
# optimizer needs capturable=True).
pretrain_train_cfg = dict(type='EpochBasedTrainLoop', max_epochs='${pretrain_epochs}')
retrieval_finetune_hooks = [dict(type='EpochSeedHook'),
                            dict(type='AlphaWarmupHook', warmup_epochs=1)]
# Model selection as BLIP's: validate after every fine-tuning epoch and hand on the best
# checkpoint (captioning by CIDEr + BLEU-4, train_caption.py; retrieval by the mean recall
# r_mean, train_retrieval.py), not the last. `finetune_val_begin` (mmengine's
# train_cfg.val_begin) is the switch: a one-epoch fine-tune has nothing to choose from, so
# configs/ablation_sharing.py sets it past its epoch and no validation runs (no CPU spent).
finetune_val_begin = 1
caption_selection = dict(
    val_dataloader=dict(eval_loader, batch_size='${eval_batch_size}',
                        dataset='${caption_val_dataset}'),
    val_cfg=dict(type='ValLoop'),
    # A list, because the metric's own `metrics` key would read as an Evaluator's.
    val_evaluator=[dict(type='CocoCaptionMetric', metrics=['BLEU', 'CIDEr'],
                        gt_file='${caption_val_gt_file}')],
    default_hooks=dict(checkpoint=dict(save_best='coco_caption/CIDEr+BLEU-4', rule='greater')))
retrieval_selection = dict(
    val_dataloader=dict(eval_loader, batch_size='${eval_batch_size}',
                        dataset='${retrieval_val_dataset}'),
    val_cfg=dict(type='RetrievalValLoop', k='${retrieval_k}'),
    val_evaluator=dict(),  # RetrievalValLoop computes its own metrics
    default_hooks=dict(checkpoint=dict(save_best='retrieval/R_mean', rule='greater')))
finetune_train_cfg = dict(by_epoch=True, max_epochs='${finetune_epochs}',
                          val_begin='${finetune_val_begin}')
caption_model = dict(losses=('lm',), prompt='a picture of ', max_text_length=40)
# The caption test metrics: COCOEvalCap's five (SPICE only where its CoreNLP jars are
# installed). An experiment whose board shows fewer can compute fewer: METEOR starts a JVM
# that loads its paraphrase tables (~7 s of one core per process).
caption_test_metrics = ['BLEU', 'METEOR', 'ROUGE-L', 'CIDEr', 'SPICE']
retrieval_model = dict(losses=('itc', 'itm'), max_text_length=35)

experiment = dict(
    seeds=[0],
    stages=[
        dict(type='TrainStage', name='pretrain', init='${pretrain_init}',
             init_required='${init_required}', runner=dict(
            model=dict(losses=('itc', 'itm', 'lm'), max_text_length=30),
            train_dataloader=dict(train_loader, batch_size='${batch_size}',
                                  dataset='${pretrain_dataset}'),
            train_cfg='${pretrain_train_cfg}',
            optim_wrapper='${pretrain_optim_wrapper}',
            param_scheduler='${pretrain_scheduler}',
            custom_hooks=pretrain_hooks)),
        dict(type='TrainStage', name='finetune_caption', init_from='pretrain', runner=dict(
            model='${caption_model}',
            train_dataloader=dict(train_loader, batch_size='${finetune_batch_size}',
                                  dataset='${caption_train_dataset}'),
            train_cfg=finetune_train_cfg,
            optim_wrapper='${finetune_optim_wrapper}',
            param_scheduler='${finetune_scheduler}', **caption_selection)),
        dict(type='EvaluateStage', name='eval_caption', task='caption',
             checkpoint_from='finetune_caption', params_from='pretrain',
             dataset='${caption_test_dataset}', dataset_name='${eval_dataset_name}',
             split='test', model='${caption_model}',
             options=dict(batch_size='${eval_batch_size}', metrics='${caption_test_metrics}')),
        dict(type='EvaluateStage', name='eval_retrieval', task='retrieval',
             checkpoint_from='pretrain', params_from='pretrain',
             dataset='${retrieval_test_dataset}', dataset_name='${eval_dataset_name}',
             split='test', model='${retrieval_model}',
             options=dict(k='${retrieval_k}', batch_size='${eval_batch_size}')),
    ],
)
