# BLIP's ablation "the gain of CapFilt is not due to longer training": No CapFilt, the human +
# web pairs replicated to the size of the CapFilt corpus, and CapFilt, the same epochs each.
# Sizes and schedule: configs/capfilt.py.
#
# Same epochs on a larger corpus means more optimisation steps and a smaller share of human
# pairs. The diagnostic rows hold them at the no-CapFilt corpus's values (human + web pairs:
# its epoch size, its human share) with tasks/capfilt/sampler.py's CorpusMixSampler, so the
# board separates the three explanations:
#   more steps             replicated vs replicated_equal_steps (same corpus, fewer steps)
#   fewer human pairs      replicated_equal_steps vs no_capfilt (same steps, same texts)
#   CapFilt's texts        capfilt_equal_steps_share vs no_capfilt (same steps and share)
# Variants of one seed share the bootstrap stages (noisy pre-training, captioner, filter,
# captioning): they run once per seed.
_base_ = ['./capfilt.py']


def corpus_mix(epoch_size='corpus', human_share='corpus'):
    """A CorpusMixSampler for the final pre-training ('uncurated': the no-CapFilt corpus's)."""
    return dict(_delete_=True, type='CorpusMixSampler', epoch_size=epoch_size,
                human_share=human_share)


def diagnostic(corpus, **mix):
    """A variant training on the CapFilt or the replicated corpus, drawn by `corpus_mix(**mix)`."""
    stages = dict(capfilt=dict(stages='${capfilt_stages}'),
                  replicated=dict(stages='${replicated_stages}',
                                  pretrain_corpus_from='replicate_corpus'))[corpus]
    return dict(stages, pretrain_corpus_sampler=corpus_mix(**mix))


experiment = dict(
    name='ablation_capfilt_effect',
    seeds=[0, 1, 2],
    variants=dict(
        _delete_=True,
        # The paper's rows.
        no_capfilt=dict(stages='${baseline_stages}'),
        replicated=dict(stages='${replicated_stages}', pretrain_corpus_from='replicate_corpus'),
        capfilt=dict(stages='${capfilt_stages}'),
        # Diagnostic rows: the no-CapFilt corpus's steps, its human-pair share, or both.
        replicated_equal_steps=diagnostic('replicated', epoch_size='uncurated'),
        capfilt_equal_steps=diagnostic('capfilt', epoch_size='uncurated'),
        capfilt_equal_steps_share=diagnostic('capfilt', epoch_size='uncurated',
                                             human_share='uncurated'),
    ),
)

leaderboard = dict(
    title='CapFilt vs longer training on replicated data',
    description='Tiny BLIPs pre-trained on ToyWorld\'s human + web pairs (no_capfilt), on '
                'those pairs replicated to the CapFilt corpus\'s size, and on the CapFilt '
                'corpus, the same epochs each (the paper\'s rows). Diagnostic rows: '
                '*_equal_steps draw the no-CapFilt corpus\'s number of pairs per epoch (equal '
                'optimisation steps); capfilt_equal_steps_share also draws human pairs at the '
                'no-CapFilt corpus\'s share; 3 seeds each. The filter\'s statistics are the '
                'same for every CapFilt variant of a seed (they share the bootstrap stages): '
                'see capfilt.md.',
    # Downstream scores only: the filter's report is one per seed whatever the variant, so
    # testing it between variants would only dilute Holm's correction.
    primary_metrics=[('caption', '${eval_dataset_name}', 'test', 'BLEU-4'),
                     ('caption', '${eval_dataset_name}', 'test', 'CIDEr'),
                     ('retrieval', '${eval_dataset_name}', 'test', 'TR@1'),
                     ('retrieval', '${eval_dataset_name}', 'test', 'IR@1')],
    paper_reference='capfilt_effect',
    variant_order=['no_capfilt', 'replicated', 'capfilt', 'replicated_equal_steps',
                   'capfilt_equal_steps', 'capfilt_equal_steps_share'],
    # The paper's three pairs, then the diagnostic contrasts (see the top of this file).
    comparisons=[('no_capfilt', 'replicated'), ('no_capfilt', 'capfilt'),
                 ('replicated', 'capfilt'),
                 ('replicated', 'replicated_equal_steps'),
                 ('no_capfilt', 'replicated_equal_steps'),
                 ('capfilt_equal_steps', 'capfilt_equal_steps_share'),
                 ('no_capfilt', 'capfilt_equal_steps_share')],
)
