"""Caption evaluation: resumable prediction cache, and 2 processes == 1 process."""
import pytest
import torch
from gloo_ranks import one_thread, run_on_ranks

import backbones  # noqa: F401  (registers the model)
import backbones.generation
from harness.core.registry import DATASETS, MODELS
from tasks.caption import evaluate_caption

SETTINGS = dict(batch_size=4, device='cpu', metrics=('BLEU', 'CIDEr'),
                decoding=dict(method='beam', num_beams=2, max_length=12, min_length=3))


def build_model(vocab_dir, state=None):
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='Blip', vision=dict(type='BlipViT', arch='vit_tiny_patch8', image_size=32),
        tokenizer=dict(type='BlipTokenizer', vocab=str(vocab_dir)), text_arch='tiny',
        losses=('lm',), prompt='a picture of ', text_overrides=dict(initializer_range=0.2)))
    if state is not None:
        model.load_state_dict(state)
    return model.eval()


def build_dataset(root):
    return DATASETS.build(dict(type='CaptionEvalDataset', data_root=str(root),
                               ann_file='annotations/coco_karpathy_test.json', image_size=32))


def test_interrupted_evaluation_resumes_and_a_finished_one_is_reused(tiny_toyworld, tmp_path,
                                                                     monkeypatch):
    model, dataset = build_model(tiny_toyworld / 'vocab'), build_dataset(tiny_toyworld)
    reference = evaluate_caption(model, dataset, **SETTINGS)

    real_generate = backbones.generation.generate_captions
    calls = []

    def fail_on_second_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError('interrupted')
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(backbones.generation, 'generate_captions', fail_on_second_batch)
    with pytest.raises(RuntimeError, match='interrupted'):
        evaluate_caption(model, dataset, work_dir=tmp_path, cache_key='ckpt', save_every=1,
                         **SETTINGS)
    calls.clear()
    resumed = evaluate_caption(model, dataset, work_dir=tmp_path, cache_key='ckpt', **SETTINGS)
    assert len(calls) == 1  # only the batch that was not finished is generated again
    assert resumed.outputs['predictions'] == reference.outputs['predictions']
    assert resumed.values() == reference.values()

    calls.clear()
    reused = evaluate_caption(model, dataset, work_dir=tmp_path, cache_key='ckpt', **SETTINGS)
    assert calls == [] and reused.values() == reference.values()


def _worker(rank, root, state):
    result = evaluate_caption(build_model(root / 'vocab', state), build_dataset(root), **SETTINGS)
    return dict(metrics=result.values(), predictions=result.outputs['predictions'])


@pytest.mark.slow
def test_two_processes_match_one(tiny_toyworld):
    model, dataset = build_model(tiny_toyworld / 'vocab'), build_dataset(tiny_toyworld)
    with one_thread():
        single = evaluate_caption(model, dataset, **SETTINGS)
    for result in run_on_ranks(_worker, tiny_toyworld, model.state_dict()):
        assert result['predictions'] == single.outputs['predictions']
        assert result['metrics'] == single.values()
    # not one degenerate caption
    assert len({p['caption'] for p in single.outputs['predictions']}) > 1
