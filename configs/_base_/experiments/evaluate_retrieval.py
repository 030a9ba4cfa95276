# BLIP's retrieval protocol (ITC top-k re-ranked by ITM match logit + cosine) for a given
# checkpoint, its architecture and resolution read from the checkpoint. Inheriting configs
# add a dataset base (with the test set's image_size None: the model's) and set
# `eval_dataset_name` and `retrieval_k` (256 COCO, 128 Flickr30K).
_base_ = ['./evaluate_checkpoint.py']

model = dict(max_text_length=35)
eval_stage = dict(type='EvaluateStage', name='eval_retrieval', task='retrieval',
                  checkpoint='${checkpoint}', dataset='${retrieval_test_dataset}',
                  dataset_name='${eval_dataset_name}', split='test',
                  options=dict(k='${retrieval_k}', batch_size='${eval_batch_size}'))
leaderboard = dict(
    description='ITC top-k candidates re-ranked by ITM match logit + cosine.',
    primary_metrics=[('retrieval', '${eval_dataset_name}', 'test', metric)
                     for metric in ('TR@1', 'TR@5', 'TR@10', 'IR@1', 'IR@5', 'IR@10')])
