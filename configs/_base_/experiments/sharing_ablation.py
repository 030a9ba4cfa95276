# BLIP Table 3: which parameters the text encoder and decoder share during pre-training.
# Four variants through the pre-train -> fine-tune -> evaluate stages.
_base_ = ['./pretrain_finetune_eval.py']

experiment = dict(
    name='ablation_sharing',
    variants=dict(
        all=dict(model=dict(sharing='all')),
        all_but_ca=dict(model=dict(sharing='all_but_ca')),
        all_but_sa=dict(model=dict(sharing='all_but_sa')),
        none=dict(model=dict(sharing='none')),
    ),
)

leaderboard = dict(
    title='Parameter sharing between text encoder and decoder (BLIP Table 3)',
    description='Four sharing policies pre-trained from scratch; captioning after '
                'fine-tuning and zero-shot retrieval, next to the paper\'s Table 3. Known '
                'limitation: the tiny CPU models do not yet learn ITC/ITM within the budget, so '
                'retrieval is at chance (R@1 = 0.5% on 200 images); only caption scores compare.',
    primary_metrics=[
        ('caption', '${eval_dataset_name}', 'test', 'BLEU-4'),
        ('caption', '${eval_dataset_name}', 'test', 'CIDEr'),
        ('retrieval', '${eval_dataset_name}', 'test', 'TR@1'),
        ('retrieval', '${eval_dataset_name}', 'test', 'IR@1'),
    ],
    paper_reference='sharing',
    variant_order=['all', 'all_but_ca', 'all_but_sa', 'none'],
)
