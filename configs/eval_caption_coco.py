# BLIP's captioning protocol on COCO Karpathy test (beam 3, max 20, min 5, prompt
# 'a picture of ') for a given checkpoint (e.g. the official model_base_caption_capfilt_large.pth
# or a Hugging Face BlipForConditionalGeneration directory); see eval_retrieval_coco.py.
_base_ = [
    './_base_/experiments/evaluate_checkpoint.py',
    './_base_/models/blip_base.py',
    './_base_/datasets/coco.py',
]

model = dict(losses=('lm',), prompt='a picture of ', max_text_length=40,
             vision=dict(image_size=384))
eval_stage = dict(type='EvaluateStage', name='eval_caption', task='caption',
                  checkpoint='${checkpoint}', dataset='${caption_test_dataset}',
                  dataset_name='coco_karpathy', split='test',
                  options=dict(batch_size='${eval_batch_size}'))
experiment = dict(name='eval_caption_coco')
leaderboard = dict(
    title='Captioning on COCO Karpathy test (BLIP protocol)',
    description='Beam 3, max length 20, min length 5; pycocoevalcap scorers.',
    primary_metrics=[('caption', 'coco_karpathy', 'test', metric)
                     for metric in ('BLEU-4', 'METEOR', 'ROUGE-L', 'CIDEr', 'SPICE')])
