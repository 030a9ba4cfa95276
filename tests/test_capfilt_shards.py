"""CapFilt on WebDataset shards (configs/capfilt_shards.py) against CapFilt on JSON, on the
tiny ToyWorld written in both formats: same pairs ⇒ same captions, scores, report, corpus."""
import dataclasses
import json

import pytest
import torch
from conftest import TINY_TOYWORLD_CFG
from test_capfilt_stages import Interrupting, SimulatedKill, context, run_stages

from backbones.checkpoint import save_official_checkpoint
from harness.config import deep_merge, load_config, resolve_config, resolve_references
from harness.core.registry import DATASETS, MODELS
from tasks.capfilt import filtering
from tasks.datasets.tar_shards import iter_samples
from tasks.toyworld import ToyWorldSpec, ensure_toyworld

SHARD_SIZE = 8  # 40 web pairs: 5 shards


def read(path):
    return json.loads(open(path).read())


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    """The tiny ToyWorld with its web corpus also written as shards of SHARD_SIZE pairs."""
    spec = dataclasses.replace(ToyWorldSpec.tiny(), web_format='webdataset',
                               web_shard_size=SHARD_SIZE)
    return ensure_toyworld(spec, tmp_path_factory.mktemp('toyworld') / 'tiny_shards')


@pytest.fixture(scope='module')
def cfg(world):
    overrides = dict(TINY_TOYWORLD_CFG, toyworld_dir=str(world))
    overrides.update({'toyworld.web_format': 'webdataset', 'toyworld.web_shard_size': SHARD_SIZE})
    return resolve_config(load_config('configs/capfilt_shards.py', overrides))


@pytest.fixture(scope='module')
def checkpoints(cfg, tmp_path_factory):
    """Random-weight captioner and filter checkpoints."""
    folder = tmp_path_factory.mktemp('checkpoints')
    paths = {}
    for stage, overrides in (('captioner', 'captioner_model'), ('filter', 'filter_model')):
        torch.manual_seed(0)
        paths[stage] = folder / f'{stage}.pth'
        save_official_checkpoint(MODELS.build(deep_merge(
            cfg['model'], resolve_references(cfg[overrides], cfg))), paths[stage])
    return paths


def stage_configs(cfg, on_shards):
    """The caption and filter stages on shards (the config's) or on JSON (capfilt.py's)."""
    stages = {stage['name']: stage for stage in resolve_references(cfg['capfilt_stages'], cfg)}
    caption = dict(stages['caption_corpus'], shard_size=SHARD_SIZE, probe_dataset=None)
    filter_ = dict(stages['filter_corpus'], shard_size=SHARD_SIZE)
    if not on_shards:
        images = dict(type='WebImageDataset', data_root=cfg['data_root'],
                      ann_file='annotations/pretrain_web.json', image_size=cfg['image_size'])
        caption, filter_ = dict(caption, images=images), dict(filter_, images=images,
                                                              corpus_format='json')
    return caption, filter_


@pytest.fixture(scope='module')
def runs(cfg, checkpoints, tmp_path_factory):
    """The filter stage's outputs and contexts of a JSON run and a shards run."""
    results = {}
    for name, on_shards in (('json', False), ('shards', True)):
        ctx = context(cfg, checkpoints, tmp_path_factory.mktemp(name))
        results[name] = ctx, run_stages(ctx, *stage_configs(cfg, on_shards))
    return results


def test_toyworld_writes_the_web_pairs_as_shards_too(world):
    web = read(world / 'annotations' / 'pretrain_web.json')
    samples = [fields for shard in sorted((world / 'web_shards').glob('*.tar'))
               for _, fields in iter_samples(shard)]
    assert len(samples) == len(web) == 40
    assert [(json.loads(s['json'])['url'], s['txt'].decode()) for s in samples] == \
        [(pair['image'], pair['caption']) for pair in web]
    assert samples[3]['png'] == (world / web[3]['image']).read_bytes()
    assert 'web_format' not in ToyWorldSpec.tiny().to_dict()  # the default world is unchanged


def test_same_pairs_give_the_same_captions_scores_report_and_corpus(runs):
    (json_ctx, on_json), (shard_ctx, on_shards) = runs['json'], runs['shards']
    captions = [ctx.manifest.outputs('caption_corpus')['captions'] for ctx in (json_ctx, shard_ctx)]
    assert read(captions[0]) == read(captions[1])
    assert read(on_json['scores']) == read(on_shards['scores'])
    assert on_shards['metrics'] == on_json['metrics']
    assert 'filter_precision' in on_shards['metrics']

    corpus = read(on_json['corpus'])
    members = [fields for path in on_shards['corpus'] for _, fields in iter_samples(path)]
    meta = [json.loads(fields['json']) for fields in members]
    assert sorted((m['url'], m['caption']) for m in meta) == \
        sorted((pair['image'], pair['caption']) for pair in corpus)
    assert [fields['txt'].decode() for fields in members] == [m['caption'] for m in meta]
    scores = {(s['source'], s['image'], s['caption']): s['p_match']
              for s in read(on_json['scores'])}
    for m in meta:
        if m['source'] == 'human':
            assert m['p_match'] is None
        else:
            assert m['p_match'] == scores[(m['source'], m['url'], m['caption'])] > 0.5


def test_filter_on_shards_resumes_per_input_shard(cfg, checkpoints, runs, tmp_path, monkeypatch):
    shard_ctx, on_shards = runs['shards']
    caption_cfg, filter_cfg = stage_configs(cfg, on_shards=True)
    ctx = context(cfg, checkpoints, tmp_path)
    ctx.manifest.mark_done('caption_corpus', shard_ctx.manifest.outputs('caption_corpus'), 0.0)
    killed = Interrupting(filtering.score_shard, allowed=3)
    monkeypatch.setattr(filtering, 'score_shard', killed)
    with pytest.raises(SimulatedKill):
        run_stages(ctx, filter_cfg)
    resumed = Interrupting(killed.function)
    monkeypatch.setattr(filtering, 'score_shard', resumed)
    outputs = run_stages(ctx, filter_cfg)
    assert resumed.calls == 2  # 5 input shards, 3 finished before the kill
    assert read(outputs['scores']) == read(on_shards['scores'])


def test_the_corpus_shards_stream_into_pre_training(cfg, runs):
    _, on_shards = runs['shards']
    dataset_cfg = dict(resolve_references(cfg['pretrain_shards_dataset'], cfg),
                       shards=on_shards['corpus'])
    dataset = DATASETS.build(dataset_cfg)
    texts = [item['text'] for item in dataset]
    assert len(texts) == len(read(runs['json'][1]['corpus'])) == on_shards['corpus_size']
    assert dataset.bad_sample_report().count == 0
