"""Training works: a tiny BLIP pre-trained for about a minute on the CPU beats the same
shapes at random weights on retrieval and captioning (the CI benchmark's data and schedule)."""
import pytest
import torch

from harness.benchmark import run_benchmark
from harness.config import deep_merge, load_config, resolve_config
from harness.experiment import variant_config
from harness.core.registry import DATASETS, MODELS, TASKS

CONFIG = 'configs/ci_benchmark.py'
SPLIT = 'toyworld_coco/test'


def random_weights_scores(cfg: dict) -> dict:
    """Retrieval and caption scores of freshly initialised models of the benchmark's shapes."""
    torch.manual_seed(0)
    retrieval_model = MODELS.build(deep_merge(cfg['model'], cfg['retrieval_model'])).eval()
    retrieval = TASKS.get('retrieval')(
        retrieval_model, DATASETS.build(cfg['retrieval_test_dataset']), k=cfg['retrieval_k'])
    caption_model = MODELS.build(deep_merge(cfg['model'], cfg['caption_model'])).eval()
    caption = TASKS.get('caption')(
        caption_model, DATASETS.build(cfg['caption_test_dataset']), metrics=('CIDEr',))
    return {**{f'retrieval/{SPLIT}/{k}': v for k, v in retrieval.values().items()},
            f'caption/{SPLIT}/CIDEr': caption.metrics['CIDEr'].value}


@pytest.mark.slow
def test_pretrained_tiny_blip_beats_random_weights(tmp_path):
    trained = run_benchmark(CONFIG, work_dir=tmp_path)
    cfg = resolve_config(variant_config(load_config(CONFIG), 'all_but_sa'))
    untrained = random_weights_scores(cfg)
    for metric in ('TR@1', 'IR@1', 'R_mean'):
        key = f'retrieval/{SPLIT}/{metric}'
        assert trained[key] > 2 * untrained[key] + 5, (key, trained[key], untrained[key])
    key = f'caption/{SPLIT}/CIDEr'
    assert trained[key] > untrained[key] + 10, (key, trained[key], untrained[key])
