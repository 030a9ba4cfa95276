"""The CI score gate: passes on the benchmark's own scores, fails on a damaged model."""
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from conftest import TINY_TOYWORLD_CFG

from harness import regress
from harness.benchmark import run_benchmark
from harness.core.safe_globals import register_mmengine_safe_globals

CONFIG = 'configs/ci_benchmark.py'
REPO = Path(__file__).resolve().parents[1]
GATED = 'caption/toyworld_coco/test/CIDEr'


def options(toyworld_root):
    cfg = dict(TINY_TOYWORLD_CFG)
    cfg.update({'toyworld_dir': str(toyworld_root), 'pretrain_epochs': 2, 'finetune_epochs': 3,
                'batch_size': 16, 'retrieval_k': 4, 'model.queue_size': 64})
    return cfg


def damage_checkpoint(path):
    """Overwrite the caption model's decoder weights with noise (a broken model)."""
    register_mmengine_safe_globals()
    checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    generator = torch.Generator().manual_seed(0)
    for key, tensor in checkpoint['state_dict'].items():
        if key.startswith('text_decoder.') and tensor.is_floating_point():
            tensor.copy_(torch.randn(tensor.shape, generator=generator))
    torch.save(checkpoint, path)


def gate(tmp_path, baseline_scores, current_scores):
    baselines = tmp_path / 'baselines'
    baselines.mkdir(exist_ok=True)
    (baselines / 'smoke.json').write_text(json.dumps(dict(
        name='smoke', benchmark_config=CONFIG, metrics=baseline_scores,
        tolerance={key: 1.0 for key in baseline_scores})))
    scores = tmp_path / 'scores.json'
    scores.write_text(json.dumps(current_scores))
    return regress.main(['--baseline', 'smoke', '--scores', str(scores),
                         '--baselines-dir', str(baselines)])


def test_gate_passes_on_the_baseline_and_fails_on_a_damaged_model(tiny_toyworld, tmp_path,
                                                                 capsys):
    work = tmp_path / 'run'
    scores = run_benchmark(CONFIG, work_dir=work, cfg_options=options(tiny_toyworld))
    assert GATED in scores and 'retrieval/toyworld_coco/test/TR@1' in scores
    assert gate(tmp_path, scores, scores) == 0

    variant_dir = work / 'work' / 'all_but_sa' / 'seed_0'
    manifest = json.loads((variant_dir / 'manifest.json').read_text())
    damage_checkpoint(manifest['stages']['finetune_caption']['outputs']['checkpoint'])
    del manifest['stages']['eval_caption']
    (variant_dir / 'manifest.json').write_text(json.dumps(manifest))
    damaged = run_benchmark(CONFIG, work_dir=work, cfg_options=options(tiny_toyworld))
    assert damaged[GATED] < scores[GATED] - 1.0
    capsys.readouterr()
    assert gate(tmp_path, scores, damaged) == 1
    table = capsys.readouterr().out
    assert 'FAIL' in table and GATED in table


# Runs the gate's benchmark as regress does (at the baseline's thread count) in a process
# of its own, so that OMP_NUM_THREADS takes effect as on another machine.
BENCHMARK_SCRIPT = '''
import json, sys
from harness.benchmark import run_benchmark
scores = run_benchmark(sys.argv[1], work_dir=sys.argv[2], cfg_options=json.loads(sys.argv[3]),
                       threads=2)
open(sys.argv[4], 'w').write(json.dumps(scores))
'''


def benchmark_in_process(tmp_path, toyworld_root, omp_threads: int):
    """Scores and pre-trained weights of the benchmark run under OMP_NUM_THREADS=omp_threads."""
    work, scores = tmp_path / f'omp{omp_threads}', tmp_path / f'omp{omp_threads}.json'
    cfg = dict(options(toyworld_root), pretrain_epochs=1, finetune_epochs=1)
    env = dict(os.environ, OMP_NUM_THREADS=str(omp_threads), MKL_NUM_THREADS=str(omp_threads),
               PYTHONHASHSEED='0')
    subprocess.run([sys.executable, '-c', BENCHMARK_SCRIPT, CONFIG, str(work), json.dumps(cfg),
                    str(scores)], cwd=REPO, env=env, check=True, capture_output=True)
    manifest = json.loads((work / 'work' / 'all_but_sa' / 'seed_0' / 'manifest.json').read_text())
    register_mmengine_safe_globals()
    weights = torch.load(manifest['stages']['pretrain']['outputs']['checkpoint'],
                         map_location='cpu', weights_only=True)['state_dict']
    return json.loads(scores.read_text()), weights


def test_the_gates_scores_do_not_depend_on_the_machines_thread_count(tiny_toyworld, tmp_path):
    one_scores, one_weights = benchmark_in_process(tmp_path, tiny_toyworld, 1)
    two_scores, two_weights = benchmark_in_process(tmp_path, tiny_toyworld, 2)
    assert one_scores == two_scores and GATED in one_scores
    assert one_weights.keys() == two_weights.keys()
    assert all(torch.equal(one_weights[key], two_weights[key]) for key in one_weights)
