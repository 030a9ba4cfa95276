# configs/capfilt.py with the web corpus and the bootstrapped corpus as WebDataset tar shards
# (img2dataset's layout): ToyWorld writes its web pairs as web_shards/NNNNN.tar too, the
# caption and filter stages read those shards, the filter stage writes the corpus as shards,
# and the final pre-training streams them (WebShardDataset + ShardProgressHook). The noisy
# pre-training and fine-tuning read the same JSON files as configs/capfilt.py, and the web
# shards hold capfilt_shard_size pairs each, so captions, scores, corpus and the filter's
# precision/recall are those of the JSON run (tests/test_capfilt_shards.py).
_base_ = ['./capfilt.py']

toyworld = dict(web_format='webdataset', web_shard_size=256)  # = capfilt_shard_size
capfilt_web_images = dict(_delete_=True, type='WebShardImageDataset', data_root='${data_root}',
                          shards='web_shards/*.tar', image_size='${image_size}')
# The corpus stage fills `shards` with its shard list (TrainStage corpus_field='shards').
pretrain_shards_dataset = dict(
    type='WebShardDataset', data_root='${data_root}', shards=None, image_size='${image_size}',
    max_words=30, train=True, crop_scale=(0.2, 1.0), hflip=False, shuffle_buffer=1000)


def on_shards(stage):
    """The capfilt stage `stage`, switched to shards where it reads or writes a corpus."""
    if stage['name'] == 'filter_corpus':
        return dict(stage, corpus_format='webdataset')
    if stage['name'] == 'pretrain':
        runner = dict(stage['runner'], custom_hooks=[*_base_.pretrain_hooks,
                                                     dict(type='ShardProgressHook')])
        runner['train_dataloader'] = dict(_base_.train_loader, sampler=None,
                                          batch_size='${batch_size}',
                                          dataset='${pretrain_shards_dataset}')
        return dict(stage, corpus_field='shards', runner=runner)
    return stage


capfilt_stages = [on_shards(stage) for stage in _base_.capfilt_stages]
experiment = dict(name='capfilt_shards', variants=dict(capfilt_shards=dict()))
