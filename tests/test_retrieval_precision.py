"""``python -m benchmarks.retrieval_precision``: one checkpoint's retrieval at three precisions."""
import torch

from benchmarks import retrieval_precision
from harness.config import load_config
from harness.core.registry import MODELS
from harness.core.tree import deep_merge
from harness.experiment import resolved_variant_config


def test_a_checkpoint_is_scored_at_float32_autocast_and_bf16_weights(tmp_path):
    cfg = resolved_variant_config(load_config('configs/ablation_sharing.py'), 'all')
    torch.manual_seed(0)
    model = MODELS.build(deep_merge(cfg['model'], cfg['retrieval_model']))
    torch.save(dict(state_dict=model.state_dict()), tmp_path / 'pretrain.pth')
    rows = retrieval_precision.main(['--checkpoint', str(tmp_path / 'pretrain.pth'),
                                     '--device', 'cpu', '--out', str(tmp_path / 'out')])
    settings = [row.split(' | ')[0].lstrip('| ') for row in rows[2:]]
    assert settings == ['fp32', 'bf16 autocast', 'bf16 weights']
    assert '| 100.0% / 100.0% | 0.0e+00 |' in rows[2]  # float32 against itself
    assert '| 0.0e+00 |' not in rows[4]  # bf16 weights round differently
    assert (tmp_path / 'out' / 'agreement.md').read_text().count('\n| ') == 4
