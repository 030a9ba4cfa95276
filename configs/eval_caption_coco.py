# BLIP's captioning protocol on COCO Karpathy test (beam 3, max 20, min 5, prompt
# 'a picture of ') for a given checkpoint; the model (shapes, heads, resolution, tokenizer)
# comes from it:
#   python harness/run.py configs/eval_caption_coco.py --cfg-options \
#       checkpoint=/models/blip-image-captioning-base data_root=/data/coco
# (an official .pth, e.g. model_base_caption_capfilt_large.pth, also needs
# bert_dir=/models/bert-base-uncased: it holds no tokenizer).
_base_ = [
    './_base_/experiments/evaluate_checkpoint.py',
    './_base_/datasets/coco.py',
]

model = dict(prompt='a picture of ', max_text_length=40)
caption_test_dataset = dict(image_size=None)  # None: the model's (the checkpoint's)
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
