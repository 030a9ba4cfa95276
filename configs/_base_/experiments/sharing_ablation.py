# BLIP Table 3: which parameters the text encoder and decoder share during pre-training.
# Four variants through the pre-train -> fine-tune -> evaluate stages.
_base_ = ['./pretrain_finetune_eval.py']

# BLIP's Table 3 reports BLEU-4 and CIDEr for captioning, and so does this board: METEOR,
# ROUGE-L and SPICE are not computed (METEOR alone costs each process a ~7 s JVM start).
# Add them here to have them in each run's results record.
caption_test_metrics = ['BLEU', 'CIDEr']

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
    description='Four sharing policies, each a tiny BLIP pre-trained from scratch on ToyWorld '
                '(326 steps of ITC+ITM+LM), then fine-tuned for captioning (beam 3) and '
                'evaluated zero-shot on retrieval (ITC top-16 re-ranked by ITM + cosine; '
                'chance R@1 = 0.5% on 200 images), next to the paper\'s Table 3. Several '
                'caption differences between policies are significant after the Holm '
                'correction, in an order that is not the paper\'s (see Significance and the '
                'rank agreement); the tiny config\'s departures from BLIP are listed in the '
                'README.',
    primary_metrics=[
        ('caption', '${eval_dataset_name}', 'test', 'BLEU-4'),
        ('caption', '${eval_dataset_name}', 'test', 'CIDEr'),
        ('retrieval', '${eval_dataset_name}', 'test', 'TR@1'),
        ('retrieval', '${eval_dataset_name}', 'test', 'IR@1'),
    ],
    paper_reference='sharing',
    variant_order=['all', 'all_but_ca', 'all_but_sa', 'none'],
)
