# The CI score gate's second benchmark: the task families beyond captioning and retrieval
# (VQA and GQA by rank and generate, zero-shot text-video retrieval and video QA) with one
# tiny BLIP on a small ToyWorld, fixed seed, about two minutes on a 2-core CPU. Its scores
# are gated against leaderboards/baselines/toyworld_tasks_smoke.json by
# `python -m harness.regress`.
_base_ = ['./video_zeroshot_toyworld.py']

toyworld = dict(n_train=300, n_web=300, n_val=40, n_test=60, n_flickr_train=20,
                n_flickr_val=10, n_flickr_test=10, n_vqa_train=150, n_vqa_val=5, n_vqa_test=20,
                n_videos=8)
vqa_epochs = 5
retrieval_k = 8
experiment = dict(name='ci_tasks', stages=[*_base_.experiment.stages, *_base_.vqa_eval_stages])
