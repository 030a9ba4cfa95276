# BLIP Table 4: captioner and filter sharing parameters (one model fine-tuned with
# ITC+ITM+LM for both roles) or decoupled (two models). Sizes and schedule: configs/capfilt.py.
_base_ = ['./capfilt.py']

experiment = dict(
    name='ablation_capfilt_sharing',
    variants=dict(
        _delete_=True,
        shared=dict(stages='${shared_capfilt_stages}'),
        decoupled=dict(stages='${capfilt_stages}'),
    ),
)

leaderboard = dict(
    title='Captioner and filter: shared vs decoupled parameters (BLIP Table 4)',
    description='CapFilt with one fine-tuned model as both captioner and filter, or two '
                'separately fine-tuned ones; captioning of the re-trained model and the '
                'filter\'s noise ratios (the paper: sharing filters far less noise).',
    paper_reference='capfilt_sharing',
    variant_order=['shared', 'decoupled'],
)
