# The main job: BLIP's parameter-sharing ablation (Table 3) with tiny BLIPs on ToyWorld,
# on the CPU in minutes. configs/ablation_sharing_gpu.py runs it at BLIP-base shapes on COCO.
_base_ = [
    './_base_/experiments/sharing_ablation.py',
    './_base_/models/blip_tiny.py',
    './_base_/datasets/toyworld.py',
    './_base_/schedules/toy_cpu.py',
]

# Fine-tuning lasts one epoch (toy_cpu.py): there is no epoch to select, so no validation
# runs (validation starts after epoch 2, which never comes) and its CPU time is saved.
# Set finetune_val_begin=1 with finetune_epochs > 1 to keep the best epoch as BLIP does.
finetune_val_begin = 2

# Two processes share the four variants, two each (harness/variant_jobs.py): the same scores
# bit for bit, and less wall time on a 2-core CPU, where one process leaves part of the cores
# idle (README, "Two processes for the four variants"). `--jobs 1` runs all four here.
experiment = dict(jobs=2)
