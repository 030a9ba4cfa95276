# BLIP Table 3: which parameters the text encoder and decoder share during pre-training.
# Default: tiny BLIPs on ToyWorld (CPU, minutes). For BLIP-base on real COCO use
# configs/ablation_sharing_gpu.py.
_base_ = [
    './_base_/experiments/pretrain_finetune_eval.py',
    './_base_/models/blip_tiny.py',
    './_base_/datasets/toyworld.py',
    './_base_/schedules/toy_cpu.py',
]

experiment = dict(
    name='ablation_sharing',
    seeds=[0],
    variants=dict(
        all=dict(model=dict(sharing='all')),
        all_but_ca=dict(model=dict(sharing='all_but_ca')),
        all_but_sa=dict(model=dict(sharing='all_but_sa')),
        none=dict(model=dict(sharing='none')),
    ),
)

leaderboard = dict(
    title='Parameter sharing between text encoder and decoder (BLIP Table 3)',
    description='Four sharing policies pre-trained on ToyWorld; caption and retrieval on '
                'the ToyWorld COCO-format test split, next to the paper\'s Table 3.',
    primary_metrics=[
        ('caption', 'toyworld_coco', 'test', 'BLEU-4'),
        ('caption', 'toyworld_coco', 'test', 'CIDEr'),
        ('retrieval', 'toyworld_coco', 'test', 'TR@1'),
        ('retrieval', 'toyworld_coco', 'test', 'IR@1'),
    ],
    paper_reference='sharing',
    variant_order=['all', 'all_but_ca', 'all_but_sa', 'none'],
)
