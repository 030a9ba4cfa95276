# BLIP's retrieval protocol on Flickr30K test (1k images, 5k captions, k=128) for a given
# checkpoint (e.g. the official model_base_retrieval_flickr.pth); see eval_retrieval_coco.py.
_base_ = [
    './_base_/experiments/evaluate_checkpoint.py',
    './_base_/models/blip_base.py',
    './_base_/datasets/flickr30k.py',
]

model = dict(losses=('itc', 'itm'), max_text_length=35, vision=dict(image_size=384))
eval_stage = dict(type='EvaluateStage', name='eval_retrieval', task='retrieval',
                  checkpoint='${checkpoint}', dataset='${retrieval_test_dataset}',
                  dataset_name='flickr30k', split='test',
                  options=dict(k=128, batch_size='${eval_batch_size}'))
experiment = dict(name='eval_retrieval_flickr30k')
leaderboard = dict(
    title='Retrieval on Flickr30K test (BLIP protocol, k=128)',
    description='ITC top-128 candidates re-ranked by ITM match logit + cosine.',
    primary_metrics=[('retrieval', 'flickr30k', 'test', metric)
                     for metric in ('TR@1', 'TR@5', 'TR@10', 'IR@1', 'IR@5', 'IR@10')])
