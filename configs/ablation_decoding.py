# BLIP Table 2 (decoding): synthetic captions by beam search or nucleus sampling, against no
# CapFilt at all (pre-training on human + web pairs). Sizes and schedule: configs/capfilt.py.
_base_ = ['./capfilt.py']

experiment = dict(
    name='ablation_decoding',
    variants=dict(
        _delete_=True,
        none=dict(stages='${baseline_stages}'),
        beam=dict(capfilt_decoding=dict(method='beam', num_beams=3)),
        nucleus=dict(capfilt_decoding=dict(method='nucleus', top_p=0.9)),
    ),
)

leaderboard = dict(
    title='Decoding method of the CapFilt captioner (BLIP Table 2)',
    description='Tiny BLIPs pre-trained on ToyWorld without CapFilt, or on a corpus '
                'bootstrapped with beam-search or nucleus-sampled synthetic captions; '
                'captioning after fine-tuning and the filter\'s noise ratios.',
    paper_reference='decoding',
    variant_order=['none', 'beam', 'nucleus'],
)
