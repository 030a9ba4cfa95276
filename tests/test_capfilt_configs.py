"""The CapFilt configs: each ablation variant runs the intended stage list; corpus_from works."""
import pytest

from harness.config import load_config, resolve_references
from harness.experiment import variant_config, variant_names
from harness.core.paper import paper_reference
from harness.core.registry import STAGES
from harness.core.stage import Manifest, StageContext

FINAL = ['pretrain', 'finetune_caption', 'eval_caption', 'eval_retrieval']
CAPFILT = ['pretrain_noisy', 'captioner', 'filter', 'caption_corpus', 'filter_corpus', *FINAL]
SHARED = ['pretrain_noisy', 'captioner_filter', 'caption_corpus', 'filter_corpus', *FINAL]
REPLICATED = CAPFILT[:5] + ['replicate_corpus', *FINAL]
# A data root that is only named, never read: the stage lists resolve without generating data.
NO_DATA = {'data_root': '/data/never-read'}

EXPECTED = {
    'configs/capfilt.py': {'capfilt': (CAPFILT, 'filter_corpus')},
    'configs/ablation_decoding.py': {'none': (FINAL, None), 'beam': (CAPFILT, 'filter_corpus'),
                                     'nucleus': (CAPFILT, 'filter_corpus')},
    'configs/ablation_capfilt_sharing.py': {'shared': (SHARED, 'filter_corpus'),
                                            'decoupled': (CAPFILT, 'filter_corpus')},
    'configs/ablation_capfilt_effect.py': {
        'no_capfilt': (FINAL, None), 'replicated': (REPLICATED, 'replicate_corpus'),
        'capfilt': (CAPFILT, 'filter_corpus'),
        'replicated_equal_steps': (REPLICATED, 'replicate_corpus'),
        'capfilt_equal_steps': (CAPFILT, 'filter_corpus'),
        'capfilt_equal_steps_share': (CAPFILT, 'filter_corpus')},
}
# Variants after the paper's rows (diagnostic rows the paper does not have).
DIAGNOSTIC = {'configs/ablation_capfilt_effect.py': 3}


def variant_stages(cfg, variant):
    """The resolved stage configs one variant runs."""
    return resolve_references(cfg['experiment']['stages'], variant_config(cfg, variant))


@pytest.mark.parametrize('config', sorted(EXPECTED))
def test_variants_run_their_stage_lists(config):
    cfg = load_config(config, NO_DATA)
    assert variant_names(cfg) == list(EXPECTED[config])
    for variant, (names, corpus_from) in EXPECTED[config].items():
        stages = variant_stages(cfg, variant)
        assert [stage['name'] for stage in stages] == names, variant
        pretrain = next(stage for stage in stages if stage['name'] == 'pretrain')
        assert pretrain.get('corpus_from') == corpus_from
        assert 'init_from' not in pretrain  # the new model starts from scratch
    reference = cfg['leaderboard'].get('paper_reference')
    if reference:
        paper_variants = list(EXPECTED[config])[:len(EXPECTED[config]) - DIAGNOSTIC.get(config, 0)]
        assert [row.variant for row in paper_reference(reference).rows] == paper_variants


def test_decoding_variants_pick_their_decoding():
    cfg = load_config('configs/ablation_decoding.py', NO_DATA)
    for variant in ('beam', 'nucleus'):
        caption = next(stage for stage in variant_stages(cfg, variant)
                       if stage['name'] == 'caption_corpus')
        assert caption['decoding']['method'] == variant


def test_shared_variant_uses_one_model_for_both_roles():
    cfg = load_config('configs/ablation_capfilt_sharing.py', NO_DATA)
    stages = {stage['name']: stage for stage in variant_stages(cfg, 'shared')}
    assert stages['caption_corpus']['captioner_from'] == 'captioner_filter'
    assert stages['filter_corpus']['filter_from'] == 'captioner_filter'
    assert set(stages['captioner_filter']['runner']['model']['losses']) == {'itc', 'itm', 'lm'}


def test_corpus_from_replaces_the_training_annotation_file(tmp_path):
    cfg = load_config('configs/capfilt.py', NO_DATA)
    stage_cfg = next(stage for stage in variant_stages(cfg, 'capfilt')
                     if stage['name'] == 'pretrain')
    manifest = Manifest(tmp_path)
    manifest.mark_done('filter_corpus', dict(corpus='/data/corpus.json'), 0.0)
    ctx = StageContext(experiment='capfilt', variant='capfilt', seed=0, cfg=cfg,
                       work_dir=tmp_path, manifest=manifest, device='cpu')
    runner_cfg = STAGES.build(stage_cfg).runner_config(ctx)
    assert runner_cfg['train_dataloader']['dataset']['ann_file'] == '/data/corpus.json'
    assert runner_cfg['train_dataloader']['dataset']['data_root'] == NO_DATA['data_root']


def test_diagnostic_variants_hand_the_corpus_composition_to_their_sampler(tmp_path):
    cfg = load_config('configs/ablation_capfilt_effect.py', NO_DATA)
    manifest = Manifest(tmp_path)
    composition = dict(human=200, web=800)
    manifest.mark_done('filter_corpus', dict(corpus='/data/corpus.json',
                                             composition=composition), 0.0)
    ctx = StageContext(experiment='e', variant='v', seed=0, cfg=cfg, work_dir=tmp_path,
                       manifest=manifest, device='cpu')
    samplers = {}
    for variant in ('capfilt', 'capfilt_equal_steps', 'capfilt_equal_steps_share'):
        stage_cfg = next(stage for stage in variant_stages(cfg, variant)
                         if stage['name'] == 'pretrain')
        samplers[variant] = STAGES.build(stage_cfg).runner_config(
            ctx)['train_dataloader']['sampler']
    assert samplers['capfilt'] == dict(type='DefaultSampler', shuffle=True)
    assert samplers['capfilt_equal_steps'] == dict(
        type='CorpusMixSampler', epoch_size='uncurated', human_share='corpus',
        composition=composition)
    assert samplers['capfilt_equal_steps_share']['human_share'] == 'uncurated'
