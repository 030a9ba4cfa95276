# Frames per video (1 / 4 / 8 / 16) in zero-shot text-video retrieval on ToyWorld's clips:
# one checkpoint (the retrieval fine-tuned tiny BLIP of configs/video_zeroshot_toyworld.py)
# evaluated once per frame count; nothing is trained.
#   python harness/run.py configs/video_frames_toyworld.py --cfg-options \
#       checkpoint=work_dirs/video_zeroshot_toyworld/default/seed_0/finetune_retrieval/epoch_1.pth
# The clips have 16 frames: at 16, every frame is used.
_base_ = [
    './_base_/default_runtime.py',
    './_base_/models/blip_tiny.py',
    './_base_/datasets/toyworld.py',
    './_base_/datasets/toyworld_video.py',
]

checkpoint = None
video_k = 128
eval_batch_size = 64
model = dict(losses=('itc', 'itm'), max_text_length=35)
# '${work_dir}' is the run's work dir: the board of a local checkpoint stays with it.
work_dir = None
leaderboard_dir = '${work_dir}'
experiment = dict(
    name='video_frames_toyworld', seeds=[0],
    variants={f'frames_{count}': dict(video_frames=count) for count in (1, 4, 8, 16)},
    stages=[dict(type='EvaluateStage', name='eval_video_retrieval', task='video_retrieval',
                 checkpoint='${checkpoint}', dataset='${video_test_dataset}',
                 dataset_name='toyworld_msrvtt', split='test',
                 options=dict(k='${video_k}', batch_size='${eval_batch_size}'))],
)
leaderboard = dict(
    title='Frames per video in zero-shot text-video retrieval (ToyWorld clips)',
    description="One tiny BLIP (ToyWorld images only), BLIP's video protocol with 1, 4, 8 "
                "(BLIP's setting) or 16 frames per clip, BLIP's uniform frame rule.",
    primary_metrics=[('video_retrieval', 'toyworld_msrvtt', 'test', metric)
                     for metric in ('t2v_R@1', 't2v_R@5', 't2v_MdR', 'v2t_R@1')],
    variant_order=['frames_1', 'frames_4', 'frames_8', 'frames_16'],
)
