# Evaluate one given checkpoint (an official BLIP .pth, a Hugging Face BLIP directory or one
# of ours) with one task's protocol; no training. The configs that inherit this set
# `eval_stage`; the user sets `checkpoint`, `data_root` and `bert_dir` with --cfg-options.
_base_ = ['../default_runtime.py']

checkpoint = None
eval_batch_size = 64
experiment = dict(seeds=[0], variants=dict(checkpoint=dict()), stages=['${eval_stage}'])
