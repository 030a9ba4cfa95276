# Worked example (README, "Add a backbone" / "Add a task"): the CI benchmark's experiment
# with the ViT swapped for an out-of-tree backbone and one more evaluation by an
# out-of-tree task, both imported by custom_imports.
_base_ = ['../../configs/ci_benchmark.py']

custom_imports = dict(imports=['tests.plugin_example.patch_mlp_backbone',
                               'tests.plugin_example.caption_length_task'])
model = dict(vision=dict(_delete_=True, type='PatchMLPBackbone', image_size=64, patch_size=8,
                         embed_dim=96))
pretrain_epochs = 1
finetune_epochs = 1
eval_caption_length = dict(
    type='EvaluateStage', name='eval_caption_length', task='caption_length',
    checkpoint_from='finetune_caption', dataset='${caption_test_dataset}',
    dataset_name='${eval_dataset_name}', model='${caption_model}')
experiment = dict(name='plugin_example',
                  stages=[*_base_.experiment.stages, '${eval_caption_length}'])
leaderboard = dict(title='Plugin example: a patch-MLP backbone and a caption-length task')
