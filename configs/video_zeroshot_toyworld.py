# Zero-shot video tasks on ToyWorld's MSRVTT-format clips, by a tiny BLIP that never saw a
# video, pre-trained (ITC+ITM+LM) on ToyWorld *images*:
# * text-video retrieval (BLIP's eval_retrieval_video.py protocol) after retrieval
#   fine-tuning (ITC+ITM) on images, as BLIP's zero-shot MSRVTT row uses its COCO-retrieval
#   model. Chance: t2v R@1 = 1/32 = 3.1% (32 clips, one caption each);
# * video QA (the paper's method) after VQA fine-tuning on ToyWorld's image VQAv2 train
#   (vqa_finetune_eval.py's stage): the VQA model on 16 frames' tokens concatenated, rank
#   inference over the answer list (k=128), exact match after VQA normalisation, beside the
#   majority-training-answer baseline.
# A few minutes on 2 CPU cores:
#   python harness/run.py configs/video_zeroshot_toyworld.py
# The frames-per-video ablation evaluates the fine-tuned checkpoint of this run:
# configs/video_frames_toyworld.py.
_base_ = [
    './_base_/experiments/pretrain_finetune_eval.py',
    './_base_/experiments/vqa_finetune_eval.py',
    './_base_/models/blip_tiny.py',
    './_base_/datasets/toyworld_vqa.py',
    './_base_/datasets/toyworld_video.py',
    './_base_/schedules/toy_cpu.py',
]

video_k = 128  # BLIP's k_test for MSRVTT (capped at the 32 clips / captions here)
video_qa_k = 128  # BLIP's VQA rank inference (capped at the answer list)
video_model = dict(_base_.retrieval_model, image_id_positives=True)


def base_stage(base_name, **changes):
    """A copy of the _base_ stage called `base_name`, with `changes`."""
    stage = next(stage for stage in _base_.experiment.stages if stage['name'] == base_name)
    return dict(stage, **changes)


experiment = dict(
    name='video_zeroshot_toyworld',
    stages=[
        base_stage('pretrain'),
        dict(type='TrainStage', name='finetune_retrieval', init_from='pretrain', runner=dict(
            model='${video_model}',
            train_dataloader=dict(_base_.train_loader, batch_size='${finetune_batch_size}',
                                  dataset='${retrieval_train_dataset}'),
            train_cfg=_base_.finetune_train_cfg,
            optim_wrapper='${finetune_optim_wrapper}',
            param_scheduler='${finetune_scheduler}',
            custom_hooks=_base_.retrieval_finetune_hooks, **_base_.retrieval_selection)),
        dict(type='EvaluateStage', name='eval_video_retrieval', task='video_retrieval',
             checkpoint_from='finetune_retrieval', dataset='${video_test_dataset}',
             dataset_name='toyworld_msrvtt', split='test', model='${video_model}',
             options=dict(k='${video_k}', batch_size='${eval_batch_size}')),
        _base_.vqa_finetune_stage,
        dict(type='EvaluateStage', name='eval_video_qa', task='video_qa',
             checkpoint_from='finetune_vqa', dataset='${video_qa_test_dataset}',
             dataset_name='toyworld_msrvtt_qa', split='test', model='${vqa_model}',
             options=dict(method='rank', inference=dict(k='${video_qa_k}'),
                          batch_size='${eval_batch_size}')),
    ],
)
# One fine-tuning epoch: nothing to select, so no validation (as ablation_sharing.py).
finetune_val_begin = 2

leaderboard = dict(
    title='Zero-shot text-video retrieval and video QA on ToyWorld clips (BLIP protocol)',
    description='A tiny BLIP pre-trained on ToyWorld images only, evaluated zero-shot on 32 '
                'ToyWorld clips of moving shapes. Retrieval (retrieval fine-tuned on images): '
                "8 frames by BLIP's uniform rule; ITC of the frame-averaged feature, top-k "
                "re-ranked by ITM over all frames' tokens + cosine; chance t2v R@1 = 3.1%. "
                'Video QA (VQA fine-tuned on image VQAv2): 96 questions, 16 frames\' tokens '
                'concatenated, rank inference (k=128), exact match after VQA normalisation; '
                'the dashed line answers the most frequent training answer.',
    primary_metrics=[('video_retrieval', 'toyworld_msrvtt', 'test', metric)
                     for metric in ('t2v_R@1', 't2v_R@5', 't2v_R@10', 't2v_MdR', 'v2t_R@1')]
    + [('video_qa', 'toyworld_msrvtt_qa', 'test', 'accuracy')],
    paper_reference='headline',
)
