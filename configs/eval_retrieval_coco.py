# BLIP's retrieval protocol on COCO Karpathy test (5k images, 25k captions, k=256) for a
# given checkpoint, e.g. the official retrieval model:
#   python harness/run.py configs/eval_retrieval_coco.py --cfg-options \
#       checkpoint=/models/model_base_retrieval_coco.pth data_root=/data/coco \
#       bert_dir=/models/bert-base-uncased
_base_ = [
    './_base_/experiments/evaluate_checkpoint.py',
    './_base_/models/blip_base.py',
    './_base_/datasets/coco.py',
]

model = dict(losses=('itc', 'itm'), max_text_length=35, vision=dict(image_size=384))
eval_stage = dict(type='EvaluateStage', name='eval_retrieval', task='retrieval',
                  checkpoint='${checkpoint}', dataset='${retrieval_test_dataset}',
                  dataset_name='coco', split='test',
                  options=dict(k=256, batch_size='${eval_batch_size}'))
experiment = dict(name='eval_retrieval_coco')
leaderboard = dict(
    title='Retrieval on COCO Karpathy test (BLIP protocol, k=256)',
    description='ITC top-256 candidates re-ranked by ITM match logit + cosine.',
    primary_metrics=[('retrieval', 'coco', 'test', metric)
                     for metric in ('TR@1', 'TR@5', 'TR@10', 'IR@1', 'IR@5', 'IR@10')])
