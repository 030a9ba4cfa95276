# The CI score-regression benchmark: one tiny BLIP, fixed seed, a small ToyWorld, about a
# minute or two on a 2-core CPU. Its scores are gated against
# leaderboards/baselines/toyworld_smoke.json by `python -m harness.regress`.
_base_ = [
    './_base_/experiments/pretrain_finetune_eval.py',
    './_base_/models/blip_tiny.py',
    './_base_/datasets/toyworld.py',
    './_base_/schedules/toy_cpu.py',
]

toyworld = dict(seed=0, image_size=64, n_train=300, n_val=40, n_test=60, n_web=300,
                n_flickr_train=20, n_flickr_val=10, n_flickr_test=10, n_vqa_train=10,
                n_vqa_val=5, n_vqa_test=5, n_videos=4)
pretrain_epochs = 2
finetune_epochs = 2
batch_size = 32
retrieval_k = 8
experiment = dict(name='ci_benchmark', seeds=[0], variants=dict(all_but_sa=dict()))
