# Image-encoder initialisation ablation on ToyWorld: random / supervised (a timm ViT trained to
# name the objects in ToyWorld images) / CLIP (a tiny open_clip CLIP pre-trained on ToyWorld's
# pre-training pairs with open_clip's ClipLoss) x the main job's stages (pre-train ITC+ITM+LM,
# fine-tune captioning, evaluate captioning and zero-shot retrieval; configs/ablation_sharing.py).
# The initialisation is made first, inside the experiment (tasks/backbone_init), and the
# pre-training stage loads it (TrainStage init_parts_from): its file hash and key report reach
# every results record and the board. Real-shape costs of each swap:
# python -m harness.backbone_costs.
_base_ = [
    './_base_/experiments/pretrain_finetune_eval.py',
    './_base_/models/blip_tiny.py',
    './_base_/datasets/toyworld.py',
    './_base_/schedules/toy_cpu.py',
]

clip_tower = dict(_delete_=True, type='OpenClipTower', model_name='ToyWorld-ViT-T-8',
                  image_size='${image_size}')
random_init = dict(type='RandomInitStage', name='vision_init')
supervised_init = dict(type='SupervisedInitStage', name='vision_init', data_root='${data_root}',
                       ann_file='annotations/pretrain_human.json', image_size='${image_size}')
clip_init = dict(type='ClipInitStage', name='vision_init', dataset='${pretrain_dataset}')
vision_init_stage = random_init

# One fine-tuning epoch: nothing to select, so no validation (as configs/ablation_sharing.py).
finetune_val_begin = 2
# The main job's stages (configs/_base_/experiments/pretrain_finetune_eval.py) after the
# initialisation stage; pre-training loads what it made.
experiment = dict(
    name='ablation_backbone',
    variants=dict(
        random=dict(),
        supervised=dict(vision_init_stage=supervised_init),
        clip=dict(vision_init_stage=clip_init, model=dict(vision=clip_tower)),
    ),
    stages=['${vision_init_stage}',
            dict(_base_.experiment.stages[0], init_parts_from='vision_init'),
            *_base_.experiment.stages[1:]],
)

leaderboard = dict(
    title='Image-encoder initialisation: random vs supervised (timm) vs CLIP (open_clip)',
    description='A tiny BLIP whose image encoder starts from random weights, from a timm ViT '
                'trained on ToyWorld to name the shapes and colours in an image, or from the '
                'image tower of a tiny open_clip CLIP pre-trained on ToyWorld\'s pre-training '
                'pairs (ClipLoss); then the main job\'s pre-training (ITC+ITM+LM), caption '
                'fine-tuning (beam 3) and zero-shot retrieval (ITC top-16 re-ranked by ITM). '
                'The initialisation each row started from (file and sha256) is under its table.',
    primary_metrics=[
        ('caption', '${eval_dataset_name}', 'test', 'BLEU-4'),
        ('caption', '${eval_dataset_name}', 'test', 'CIDEr'),
        ('retrieval', '${eval_dataset_name}', 'test', 'TR@1'),
        ('retrieval', '${eval_dataset_name}', 'test', 'IR@1'),
    ],
    variant_order=['random', 'supervised', 'clip'],
)
