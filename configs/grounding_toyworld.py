# Pointing game on ToyWorld: does a tiny BLIP look at the object a phrase names? Pre-train
# (ITC+ITM+LM, as the main job), then score ITM Grad-CAM and decoder cross-attention maps of
# "a <colour> <shape>" against the object's box on the 200 test images.
_base_ = [
    './_base_/experiments/pretrain_finetune_eval.py',
    './_base_/models/blip_tiny.py',
    './_base_/datasets/toyworld.py',
    './_base_/schedules/toy_cpu.py',
]

# annotations/grounding_test.json: every test object's phrase ("red circle") and box.
grounding_test_dataset = dict(type='GroundingDataset', data_root='${data_root}',
                              image_size='${image_size}')
# Layers: None is BLIP's demo layer (8 of 12) scaled to the depth, before the last layer
# (tasks/explain/maps.py: layer 0 of the tiny model's 2).
grounding_options = dict(layer=None, caption_layer=None, examples=4)
METRICS = [f'{method} · {what}' for method in ('ITM Grad-CAM', 'decoder attention')
           for what in ('pointing', 'mass')]

experiment = dict(
    name='grounding', variants=dict(blip_tiny=dict()),
    stages=[_base_.experiment.stages[0],
            dict(type='EvaluateStage', name='eval_grounding', task='grounding',
                 checkpoint_from='pretrain', params_from='pretrain',
                 dataset='${grounding_test_dataset}', dataset_name='toyworld_coco',
                 split='test', model=dict(losses=('itc', 'itm', 'lm'), max_text_length=30),
                 options='${grounding_options}')])
leaderboard = dict(
    title='Grounding on ToyWorld: pointing game of ITM Grad-CAM and decoder attention',
    description='A tiny BLIP pre-trained on ToyWorld (ITC+ITM+LM, 2 epochs). For every object '
                'of the 200 test images, the text "a <colour> <shape>" is explained by ITM '
                'Grad-CAM (BLIP\'s demo: gradient of the match logit times the cross-attention '
                'probabilities, clamped at 0, mean over heads; layer 0 of 2, BLIP\'s layer 8 of '
                '12 scaled) and by the decoder\'s cross-attention while teacher-forced on the '
                'text; the map of the phrase is the mean of its two words\' 8x8 patch maps. '
                '*pointing*: share of phrases whose map peaks (patch centre) inside the '
                "object's box; *mass*: mean share of the map inside the box. The dashed line is "
                'chance, the mean box area share. Examples (box in white): '
                '![examples](grounding_examples.png)',
    primary_metrics=[('grounding', 'toyworld_coco', 'test', metric) for metric in METRICS])
