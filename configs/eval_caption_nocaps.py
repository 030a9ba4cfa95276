# BLIP's zero-shot NoCaps protocol (eval_nocaps.py: beam 3, max 20, min 5, repetition
# penalty 1.1, prompt 'a picture of ') for a COCO-fine-tuned captioner, e.g. the official
# model_base_caption_capfilt_large.pth or a Hugging Face BlipForConditionalGeneration
# directory, whose architecture and tokenizer are read from it. Set `checkpoint` and `data_root`
# with --cfg-options (and `bert_dir` for an official .pth: it holds no tokenizer). data_root holds
# BLIP's annotation files under annotations/ (nocaps_val.json, nocaps_test.json) with the
# official nocaps_val_4500_captions.json beside them, and the NoCaps images under
# nocaps/ (the folder BLIP's configs/nocaps.yaml calls image_root).
# val is scored here per domain; test has no public captions: its stage writes
# nocaps_test_result.json to its work dir, for the NoCaps evaluation server.
_base_ = ['./_base_/experiments/evaluate_checkpoint.py']

data_root = None
image_size = None  # None: the model's (the checkpoint's); a number resizes the model's ViT
nocaps_val_dataset = dict(
    type='NoCapsEvalDataset', data_root='${data_root}', ann_file='annotations/nocaps_val.json',
    gt_file='annotations/nocaps_val_4500_captions.json', image_root='nocaps',
    image_size=image_size)
nocaps_test_dataset = dict(nocaps_val_dataset, ann_file='annotations/nocaps_test.json',
                           gt_file=None)

model = dict(prompt='a picture of ', max_text_length=40)
eval_stage = dict(type='EvaluateStage', name='eval_nocaps_val', task='nocaps',
                  checkpoint='${checkpoint}', dataset='${nocaps_val_dataset}',
                  dataset_name='nocaps', split='val',
                  options=dict(batch_size='${eval_batch_size}'))
test_stage = dict(eval_stage, name='eval_nocaps_test', dataset='${nocaps_test_dataset}',
                  split='test')
experiment = dict(name='eval_caption_nocaps', stages=['${eval_stage}', '${test_stage}'])
leaderboard = dict(
    title='Zero-shot captioning on NoCaps val (BLIP protocol)',
    description='Beam 3, max length 20, min length 5, repetition penalty 1.1; CIDEr and '
                'SPICE per domain, each computed on that domain\'s images.',
    primary_metrics=[('nocaps', 'nocaps', 'val', f'{subset}_{metric}')
                     for subset in ('in-domain', 'near-domain', 'out-domain', 'overall')
                     for metric in ('CIDEr', 'SPICE')],
    paper_reference='nocaps')
