# The CI score-regression benchmark: one tiny BLIP, fixed seed, a small ToyWorld, about a
# minute or two on a 2-core CPU. Its scores are gated against
# leaderboards/baselines/toyworld_smoke.json by `python -m harness.regress`.
_base_ = [
    './_base_/experiments/pretrain_finetune_eval.py',
    './_base_/models/blip_tiny.py',
    './_base_/schedules/toy_cpu_short.py',
    './_base_/datasets/toyworld_small.py',
]

toyworld = dict(n_train=300, n_web=300)
retrieval_k = 8
experiment = dict(name='ci_benchmark', seeds=[0], variants=dict(all_but_sa=dict()))
