# VQA on ToyWorld with a tiny BLIP, a few minutes on a 2-core CPU: pre-train (ITC+ITM+LM,
# as the main job) -> fine-tune BLIP's VQA model on ToyWorld VQAv2 train -> answer ToyWorld
# VQAv2 test and GQA test-dev by rank and by generate. configs/eval_vqa_vqav2.py scores a
# real checkpoint on real VQAv2.
_base_ = [
    './_base_/experiments/pretrain_finetune_eval.py',
    './_base_/experiments/vqa_finetune_eval.py',
    './_base_/models/blip_tiny.py',
    './_base_/datasets/toyworld_vqa.py',
    './_base_/schedules/toy_cpu.py',
]

experiment = dict(
    name='vqa_toyworld', variants=dict(blip_tiny=dict()),
    stages=[_base_.experiment.stages[0], _base_.vqa_finetune_stage, *_base_.vqa_eval_stages])
leaderboard = dict(
    title='VQA on ToyWorld: rank vs generate (BLIP protocol)',
    description='A tiny BLIP pre-trained on ToyWorld, its VQA model fine-tuned on ToyWorld '
                'VQAv2 train (2,500 questions, 15 epochs), then scored on VQAv2-format test '
                '(official '
                'accuracy, per answer type) and, zero-shot, GQA-format test-dev (exact '
                'match), answering by ranking the answer list (k=128) and by generating '
                '(beam 3). The dashed line is the per-question-type majority answer of the '
                'training split. The paper rows are real VQAv2.',
    primary_metrics=[('vqa', f'toyworld_vqav2 · {method}', 'test', metric)
                     for method in ('rank', 'generate')
                     for metric in ('accuracy', 'yes/no', 'number', 'other')]
    + [('gqa', f'toyworld_gqa · {method}', 'testdev', 'accuracy')
       for method in ('rank', 'generate')],
    paper_reference='vqa')
