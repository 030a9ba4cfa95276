# BLIP's VQAv2 protocol for a given VQA checkpoint (official model_base_vqa_capfilt_large.pth
# or a Hugging Face BlipForQuestionAnswering directory): images at 480 px, rank inference
# over BLIP's answer_list.json (k=128), the official accuracy (vqaEval.py, 2016 revision).
# The model (shapes, tokenizer) comes from the checkpoint:
#   python harness/run.py configs/eval_vqa_vqav2.py --cfg-options \
#       checkpoint=/models/blip-vqa-base data_root=/data/vqav2
# data_root holds the official val2014 pair (v2_OpenEnded_mscoco_val2014_questions.json,
# v2_mscoco_val2014_annotations.json), BLIP's answer_list.json and the COCO images under
# val2014/. For test-dev (answers private): vqa_test_dataset.question_file=
# v2_OpenEnded_mscoco_test-dev2015_questions.json, annotation_file=None, image_root=test2015,
# image_pattern='COCO_test2015_{image_id:012d}.jpg'; the run writes rank_result.json, the
# file the VQAv2 server takes. Generate instead of rank: eval_stage.options.method=generate.
_base_ = ['./_base_/experiments/evaluate_checkpoint.py']

data_root = None
eval_batch_size = 32
vqa_test_dataset = dict(
    type='VQAv2Dataset', data_root='${data_root}', split='test',
    question_file='v2_OpenEnded_mscoco_val2014_questions.json',
    annotation_file='v2_mscoco_val2014_annotations.json', image_root='val2014',
    image_pattern='COCO_val2014_{image_id:012d}.jpg', answer_list_file='answer_list.json',
    image_size=480)
eval_stage = dict(type='EvaluateStage', name='eval_vqa', task='vqa', checkpoint='${checkpoint}',
                  dataset='${vqa_test_dataset}', dataset_name='vqav2', split='val2014',
                  options=dict(method='rank', batch_size='${eval_batch_size}'))
experiment = dict(name='eval_vqa_vqav2')
leaderboard = dict(
    title='VQAv2 (BLIP protocol)',
    description='Rank inference over the answer list (k=128), official VQA accuracy '
                '(2016 revision of vqaEval.py), per answer type.',
    primary_metrics=[('vqa', 'vqav2', 'val2014', metric)
                     for metric in ('accuracy', 'yes/no', 'number', 'other')],
    paper_reference='vqa')
