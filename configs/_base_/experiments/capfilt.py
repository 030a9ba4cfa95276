# CapFilt (BLIP §3.3): pre-train on the noisy corpus -> fine-tune a captioner (LM) and a filter
# (ITC+ITM) on human pairs -> caption every web image -> filter web and synthetic texts ->
# pre-train a NEW model from scratch on the bootstrapped corpus -> fine-tune and evaluate as
# pretrain_finetune_eval.py.
#
# Stage lists are top-level keys and `experiment.stages` is the late-bound reference
# '${stages}', so a variant picks its protocol with e.g. `stages='${baseline_stages}'`:
#   baseline_stages        no CapFilt (pre-train on human + web pairs), the _base_ list
#   capfilt_stages         decoupled captioner and filter (BLIP's choice)
#   shared_capfilt_stages  one model fine-tuned with ITC+ITM+LM serves as both
#   replicated_stages      CapFilt's corpus size, but human + web pairs replicated (control)
_base_ = ['./pretrain_finetune_eval.py']

capfilt_web_images = dict(type='WebImageDataset', data_root='${data_root}',
                          ann_file='annotations/pretrain_web.json', image_size='${image_size}')
capfilt_human_ann_file = 'annotations/pretrain_human.json'
capfilt_noise_labels = 'annotations/pretrain_web_noise_labels.json'  # report only
capfilt_dataset_name = 'toyworld_web'
capfilt_decoding = dict(method='nucleus', top_p=0.9, max_length=20, min_length=5)
capfilt_threshold = 0.5
capfilt_batch_size = 64
capfilt_shard_size = 256
capfilt_probe_dataset = '${caption_val_dataset}'  # synthetic_CIDEr when web images lack refs
pretrain_corpus_from = 'filter_corpus'
# How the final pre-training draws from its corpus: the ordinary shuffled epoch, or, for
# the diagnostic rows of configs/ablation_capfilt_effect.py, a CorpusMixSampler holding the
# epoch size and the human-pair share at the no-CapFilt corpus's.
pretrain_corpus_sampler = _base_.train_loader['sampler']

captioner_model = '${caption_model}'
filter_model = dict(_base_.retrieval_model, image_id_positives=True)
shared_captioner_filter_model = dict(_base_.caption_model, losses=('itc', 'itm', 'lm'),
                                     image_id_positives=True)


def base_stage(base_name, **changes):
    """A copy of the _base_ stage called `base_name`, with `changes`."""
    stage = next(stage for stage in _base_.experiment.stages if stage['name'] == base_name)
    return dict(stage, **changes)


def finetune_on_human_pairs(name, model, dataset, selection, hooks=None):
    """A TrainStage fine-tuning the noisily pre-trained model on human pairs, keeping the
    best epoch by `selection` (validation and save_best, see pretrain_finetune_eval.py)."""
    runner = dict(
        model=model,
        train_dataloader=dict(_base_.train_loader, batch_size='${finetune_batch_size}',
                              dataset=dataset),
        train_cfg=_base_.finetune_train_cfg,
        optim_wrapper='${finetune_optim_wrapper}', param_scheduler='${finetune_scheduler}',
        **selection)
    if hooks:
        runner['custom_hooks'] = hooks
    return dict(type='TrainStage', name=name, init_from='pretrain_noisy', runner=runner)


def bootstrap_stages(finetune_stages, captioner, filter_):
    """Noisy pre-training, fine-tuning, then captioning and filtering of the web corpus."""
    return [
        base_stage('pretrain', name='pretrain_noisy'),
        *finetune_stages,
        dict(type='CaptionCorpusStage', name='caption_corpus', captioner_from=captioner,
             images='${capfilt_web_images}', model='${captioner_model}',
             decoding='${capfilt_decoding}', probe_dataset='${capfilt_probe_dataset}',
             batch_size='${capfilt_batch_size}', shard_size='${capfilt_shard_size}'),
        dict(type='FilterCorpusStage', name='filter_corpus', filter_from=filter_,
             captions_from='caption_corpus', images='${capfilt_web_images}',
             human_ann_file='${capfilt_human_ann_file}', model='${filter_model}',
             threshold='${capfilt_threshold}', noise_labels='${capfilt_noise_labels}',
             dataset_name='${capfilt_dataset_name}', batch_size='${capfilt_batch_size}',
             shard_size='${capfilt_shard_size}'),
    ]


baseline_stages = _base_.experiment.stages


def corpus_pretrain_stage():
    """The final model's pre-training: the _base_ stage from scratch on the corpus of stage
    `pretrain_corpus_from`, drawn by the variant's `pretrain_corpus_sampler`."""
    stage = base_stage('pretrain', corpus_from='${pretrain_corpus_from}')
    loader = dict(stage['runner']['train_dataloader'], sampler='${pretrain_corpus_sampler}')
    return dict(stage, runner=dict(stage['runner'], train_dataloader=loader))


final_stages = [corpus_pretrain_stage(),
                *(stage for stage in baseline_stages if stage['name'] != 'pretrain')]
capfilt_stages = bootstrap_stages(
    [finetune_on_human_pairs('captioner', '${captioner_model}', '${caption_train_dataset}',
                             _base_.caption_selection),
     # The filter is fine-tuned as BLIP's retrieval model (models/blip_retrieval.py).
     finetune_on_human_pairs('filter', '${filter_model}', '${retrieval_train_dataset}',
                             _base_.retrieval_selection, _base_.retrieval_finetune_hooks)],
    'captioner', 'filter') + final_stages
shared_capfilt_stages = bootstrap_stages(
    # One model for both roles, kept by its captioning (the captioner's criterion).
    [finetune_on_human_pairs('captioner_filter', '${shared_captioner_filter_model}',
                             '${caption_train_dataset}', _base_.caption_selection,
                             _base_.retrieval_finetune_hooks)],
    'captioner_filter', 'captioner_filter') + final_stages
replicated_stages = bootstrap_stages(capfilt_stages[1:3], 'captioner', 'filter') + [
    dict(type='ReplicateCorpusStage', name='replicate_corpus', size_from='filter_corpus',
         images='${capfilt_web_images}', human_ann_file='${capfilt_human_ann_file}'),
    *final_stages]
stages = '${capfilt_stages}'

experiment = dict(stages='${stages}')
