# Evaluate one given checkpoint (an official BLIP .pth, a Hugging Face BLIP directory or one
# of ours) with one task's protocol; no training. The configs that inherit this set
# `eval_stage`; the user sets `checkpoint` and `data_root` with --cfg-options (and `bert_dir`,
# a bert-base-uncased folder, for an official .pth, which holds no tokenizer).
# The model is built from the checkpoint itself (backbones/from_checkpoint.py: shapes, heads
# and tokenizer from its config.json or tensor shapes) and loaded strictly: a checkpoint that
# leaves weights the evaluation reads unloaded is refused. Inheriting configs add the
# protocol's settings (prompt, max_text_length); a fixed architecture instead:
# model = dict(_delete_=True, type='Blip', ...).
# These are ad-hoc evaluations: the board goes to the run's work dir (not the repository's
# leaderboards/), its row is named after the checkpoint file/folder (or run.py --name).
_base_ = ['../default_runtime.py']

checkpoint = None
bert_dir = None
eval_batch_size = 64
model = dict(type='BlipFromCheckpoint', checkpoint='${checkpoint}', bert_dir='${bert_dir}')
# '${work_dir}' is the run's work dir (run.py --work-dir, default work_dirs/<config name>).
work_dir = None
leaderboard_dir = '${work_dir}'
experiment = dict(seeds=[0], variants=dict(checkpoint=dict()), stages=['${eval_stage}'],
                  name_variant_after='checkpoint')
