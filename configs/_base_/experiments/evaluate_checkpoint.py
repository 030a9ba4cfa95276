# Evaluate one given checkpoint (an official BLIP .pth, a Hugging Face BLIP directory or one
# of ours) with one task's protocol; no training. The configs that inherit this set
# `eval_stage`; the user sets `checkpoint`, `data_root` and `bert_dir` with --cfg-options.
# These are ad-hoc evaluations: the board goes to the run's work dir (not the repository's
# leaderboards/), its row is named after the checkpoint file/folder (or run.py --name).
_base_ = ['../default_runtime.py']

checkpoint = None
eval_batch_size = 64
# '${work_dir}' is the run's work dir (run.py --work-dir, default work_dirs/<config name>).
work_dir = None
leaderboard_dir = '${work_dir}'
experiment = dict(seeds=[0], variants=dict(checkpoint=dict()), stages=['${eval_stage}'],
                  name_variant_after='checkpoint')
