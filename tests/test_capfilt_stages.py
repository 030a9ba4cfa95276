"""CapFilt's caption and filter stages on the tiny ToyWorld with random-weight tiny models.

The captioner and filter checkpoints are random (no training): the stages' contracts —
resumable shards, rank splitting (simulated, and on 2 gloo processes), corpus contents —
do not depend on how good they are.
"""
import copy
import json
import shutil

import pytest
import torch
from conftest import TINY_TOYWORLD_CFG
from gloo_ranks import one_thread, run_on_ranks

from backbones.checkpoint import save_official_checkpoint
from harness.config import deep_merge, load_config, resolve_config, resolve_references
from harness.core.registry import DATASETS, MODELS, STAGES
from harness.recording import record_evaluation
from harness.core.stage import Manifest, StageContext
from harness.results import RESULTS_FILENAME, read_records
from harness.stages import load_weights
from tasks.capfilt import captioning, filtering, shards
from tasks.capfilt.captioning import caption_web_images

SHARD_SIZE = 8  # the tiny web corpus has 40 images: 5 shards


@pytest.fixture(scope='module')
def capfilt_cfg(tiny_toyworld):
    """configs/capfilt.py on the tiny ToyWorld, data roots filled in."""
    cfg = load_config('configs/capfilt.py',
                      dict(TINY_TOYWORLD_CFG, toyworld_dir=str(tiny_toyworld)))
    return resolve_config(cfg)


@pytest.fixture(scope='module')
def checkpoints(capfilt_cfg, tmp_path_factory):
    """Random-weight captioner and filter checkpoints, as the fine-tuning stages would leave."""
    folder = tmp_path_factory.mktemp('checkpoints')
    paths = {}
    for stage, overrides in (('captioner', 'captioner_model'), ('filter', 'filter_model')):
        torch.manual_seed(0)
        model_cfg = deep_merge(capfilt_cfg['model'], resolve_references(
            capfilt_cfg[overrides], capfilt_cfg))
        paths[stage] = folder / f'{stage}.pth'
        save_official_checkpoint(MODELS.build(model_cfg), paths[stage])
    return paths


def stage_configs(cfg, **changes):
    """The config's caption_corpus and filter_corpus stages (no probe split), with changes."""
    stages = {stage['name']: stage for stage in resolve_references(cfg['capfilt_stages'], cfg)}
    caption = dict(stages['caption_corpus'], shard_size=SHARD_SIZE, probe_dataset=None)
    return caption, dict(stages['filter_corpus'], shard_size=SHARD_SIZE, **changes)


def context(cfg, checkpoints, work_dir):
    """A stage context whose manifest holds the fine-tuned captioner and filter."""
    manifest = Manifest(work_dir)
    for stage, path in checkpoints.items():
        manifest.mark_done(stage, dict(checkpoint=str(path)), 0.0)
    return StageContext(experiment='test', variant='capfilt', seed=0, cfg=cfg,
                        work_dir=work_dir, manifest=manifest, device='cpu',
                        recorder=record_evaluation)


def run_stages(ctx, *configs):
    """Run the stages in order, recording each in the manifest; the last one's outputs."""
    for stage_cfg in configs:
        stage = STAGES.build(stage_cfg)
        outputs = stage.run(ctx)
        ctx.manifest.mark_done(stage.name, outputs, 0.0)
    return outputs


class SimulatedKill(Exception):
    """Stands for the process being killed mid-stage."""


class Interrupting:
    """Wraps a shard function ``(model, dataset, block, ...)``; raises after ``allowed``
    calls; counts the calls it let through and notes their shards' indices."""

    def __init__(self, function, allowed=None):
        self.function = function
        self.allowed = allowed
        self.calls = 0
        self.shards = []

    def __call__(self, model, dataset, block, *args, **kwargs):
        if self.calls == self.allowed:
            raise SimulatedKill(f'killed after {self.calls} shards')
        self.calls += 1
        self.shards.append(block.index)
        return self.function(model, dataset, block, *args, **kwargs)


@pytest.fixture(scope='module')
def straight_run(capfilt_cfg, checkpoints, tmp_path_factory):
    """An uninterrupted caption + filter run: its context and the filter's outputs."""
    ctx = context(capfilt_cfg, checkpoints, tmp_path_factory.mktemp('straight'))
    return ctx, run_stages(ctx, *stage_configs(capfilt_cfg))


def read(path):
    return json.loads(open(path).read())


def test_killed_caption_stage_resumes_to_the_same_corpus(capfilt_cfg, checkpoints, straight_run,
                                                         tmp_path, monkeypatch):
    straight_ctx, straight = straight_run
    caption_cfg, filter_cfg = stage_configs(capfilt_cfg)
    ctx = context(capfilt_cfg, checkpoints, tmp_path)
    killed = Interrupting(captioning.caption_shard, allowed=2)
    monkeypatch.setattr(captioning, 'caption_shard', killed)
    with pytest.raises(SimulatedKill):
        run_stages(ctx, caption_cfg)
    index = read(tmp_path / 'caption_corpus' / 'shards' / 'index.json')
    assert index['finished'] == [0, 1]

    resumed = Interrupting(killed.function)
    monkeypatch.setattr(captioning, 'caption_shard', resumed)
    outputs = run_stages(ctx, caption_cfg, filter_cfg)
    assert resumed.calls == 3  # only the unfinished shards
    straight_captions = straight_ctx.manifest.outputs('caption_corpus')['captions']
    assert read(ctx.manifest.outputs('caption_corpus')['captions']) == read(straight_captions)
    assert read(outputs['corpus']) == read(straight['corpus'])


def test_corpus_holds_every_human_pair_and_nothing_the_filter_rejected(
        capfilt_cfg, straight_run, monkeypatch):
    ctx, outputs = straight_run
    scores = read(outputs['scores'])
    # A threshold at the median splits the random filter's scores into kept and rejected.
    threshold = sorted(score['p_match'] for score in scores)[len(scores) // 2]
    monkeypatch.setattr(filtering, 'score_shard', Interrupting(filtering.score_shard, 0))
    _, filter_cfg = stage_configs(capfilt_cfg, threshold=threshold, name='filter_median')
    # Same scores, another threshold: the straight run's shards are reused (no scoring).
    shutil.copytree(ctx.work_dir / 'filter_corpus' / 'shards',
                    ctx.work_dir / 'filter_median' / 'shards')
    corpus = read(run_stages(ctx, filter_cfg)['corpus'])

    human = read(capfilt_cfg['toyworld_dir'] + '/annotations/pretrain_human.json')
    assert corpus[:len(human)] == [dict(image=h['image'], caption=h['caption']) for h in human]
    kept = [dict(image=s['image'], caption=s['caption']) for source in ('web', 'synthetic')
            for s in scores if s['source'] == source and s['p_match'] > threshold]
    rejected = [s for s in scores if s['p_match'] <= threshold]
    assert {s['source'] for s in rejected} == {'web', 'synthetic'}
    assert corpus[len(human):] == kept
    assert len(scores) == 2 * len(read(capfilt_cfg['toyworld_dir']
                                       + '/annotations/pretrain_web.json'))


def captioner_and_web_images(capfilt_cfg, checkpoints, work_dir):
    """The caption stage's captioner (its checkpoint loaded), web images and task options."""
    caption_cfg, _ = stage_configs(capfilt_cfg)
    model = MODELS.build(deep_merge(capfilt_cfg['model'], caption_cfg['model']))
    load_weights(model, str(checkpoints['captioner']))
    options = dict(work_dir=work_dir, decoding=caption_cfg['decoding'], seed=0,
                   batch_size=caption_cfg['batch_size'], shard_size=SHARD_SIZE)
    return model.eval(), DATASETS.build(caption_cfg['images']), options


def test_sharding_by_rank_gives_the_same_union(capfilt_cfg, checkpoints, straight_run,
                                               tmp_path, monkeypatch):
    ctx, _ = straight_run
    model, dataset, options = captioner_and_web_images(capfilt_cfg, checkpoints, tmp_path)
    monkeypatch.setattr(shards, 'barrier', lambda: None)
    monkeypatch.setattr(shards, 'get_dist_info', lambda: (0, 2))
    with pytest.raises(RuntimeError, match=r'shards \[1, 3\] are not finished'):
        caption_web_images(model, dataset, **options)  # rank 0 alone: shards 0, 2, 4
    monkeypatch.setattr(shards, 'get_dist_info', lambda: (1, 2))
    union = caption_web_images(model, dataset, **options).outputs['captions']
    one_process = read(ctx.manifest.outputs('caption_corpus')['captions'])
    assert union == one_process


def capfilt_outputs(cfg, checkpoints, work_dir) -> dict:
    """Run the caption and filter stages; their captions, corpus and scores, and the
    results records written."""
    ctx = context(cfg, checkpoints, work_dir)
    outputs = run_stages(ctx, *stage_configs(cfg))
    return dict(captions=read(ctx.manifest.outputs('caption_corpus')['captions']),
                corpus=read(outputs['corpus']), scores=read(outputs['scores']),
                records=len(read_records(work_dir / RESULTS_FILENAME)))


def _capfilt_on_rank(rank, cfg, checkpoints, work_dir):
    """The stages' outputs on this rank, and the shards it captioned and scored itself."""
    captioning.caption_shard = captioned = Interrupting(captioning.caption_shard)
    filtering.score_shard = scored = Interrupting(filtering.score_shard)
    return dict(capfilt_outputs(cfg, checkpoints, work_dir),
                shards=dict(caption=captioned.shards, filter=scored.shards))


@pytest.mark.slow
def test_two_processes_caption_and_filter_as_one(capfilt_cfg, checkpoints, tmp_path):
    with one_thread():  # as each rank
        single = capfilt_outputs(capfilt_cfg, checkpoints, tmp_path / 'one')
    ranks = run_on_ranks(_capfilt_on_rank, capfilt_cfg, checkpoints, tmp_path / 'two')
    for result in ranks:
        for key in ('captions', 'corpus', 'scores'):
            assert result[key] == single[key], key
        assert result['records'] == 1  # the filter's report, recorded by rank 0 alone
    # 40 web images in shards of 8: rank 0 does shards 0, 2, 4 and rank 1 shards 1, 3.
    assert [result['shards'] for result in ranks] == [dict(caption=[0, 2, 4], filter=[0, 2, 4]),
                                                      dict(caption=[1, 3], filter=[1, 3])]
    assert len({pair['caption'] for pair in single['captions']}) > 1


def test_bf16_weights_caption_a_cast_copy_into_their_own_shards(capfilt_cfg, checkpoints,
                                                                 tmp_path):
    model, dataset, options = captioner_and_web_images(capfilt_cfg, checkpoints, tmp_path)
    plain = caption_web_images(model, dataset, **options)
    cast = caption_web_images(model, dataset, **options, weights_dtype='bfloat16')
    assert cast.throughput  # captioned anew: the float32 shards are not taken for bf16 ones
    expected = caption_web_images(copy.deepcopy(model).bfloat16(), dataset,
                                  **dict(options, work_dir=tmp_path / 'direct'))
    assert cast.outputs['captions'] == expected.outputs['captions']
    assert next(model.parameters()).dtype == torch.float32  # the copy was cast, not the model
    again = caption_web_images(model, dataset, **options)
    assert again.outputs['captions'] == plain.outputs['captions']
