# BLIP's ablation "the gain of CapFilt is not due to longer training": No CapFilt, the human +
# web pairs replicated to the size of the CapFilt corpus, and CapFilt.
# Sizes and schedule: configs/capfilt.py.
_base_ = ['./capfilt.py']

experiment = dict(
    name='ablation_capfilt_effect',
    variants=dict(
        _delete_=True,
        no_capfilt=dict(stages='${baseline_stages}'),
        replicated=dict(stages='${replicated_stages}', pretrain_corpus_from='replicate_corpus'),
        capfilt=dict(stages='${capfilt_stages}'),
    ),
)

leaderboard = dict(
    title='CapFilt vs longer training on replicated data',
    description='Tiny BLIPs pre-trained on ToyWorld\'s human + web pairs, on those pairs '
                'replicated to the CapFilt corpus\'s size, and on the CapFilt corpus.',
    paper_reference='capfilt_effect',
    variant_order=['no_capfilt', 'replicated', 'capfilt'],
)
