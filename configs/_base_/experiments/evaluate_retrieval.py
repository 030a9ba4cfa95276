# BLIP's retrieval protocol (ITC top-k re-ranked by ITM match logit + cosine) for a given
# checkpoint of BLIP-base shapes at 384 px. Inheriting configs add a dataset base and set
# `eval_dataset_name` and `retrieval_k` (256 COCO, 128 Flickr30K).
_base_ = ['./evaluate_checkpoint.py', '../models/blip_base.py']

model = dict(losses=('itc', 'itm'), max_text_length=35, vision=dict(image_size=384))
eval_stage = dict(type='EvaluateStage', name='eval_retrieval', task='retrieval',
                  checkpoint='${checkpoint}', dataset='${retrieval_test_dataset}',
                  dataset_name='${eval_dataset_name}', split='test',
                  options=dict(k='${retrieval_k}', batch_size='${eval_batch_size}'))
leaderboard = dict(
    description='ITC top-k candidates re-ranked by ITM match logit + cosine.',
    primary_metrics=[('retrieval', '${eval_dataset_name}', 'test', metric)
                     for metric in ('TR@1', 'TR@5', 'TR@10', 'IR@1', 'IR@5', 'IR@10')])
