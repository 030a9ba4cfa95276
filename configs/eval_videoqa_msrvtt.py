# Zero-shot video QA on MSRVTT-QA test (the BLIP paper's method; its code was never
# released) for a given VQA checkpoint (official model_base_vqa_capfilt_large.pth or a
# Hugging Face BlipForQuestionAnswering directory): 16 frames per clip by BLIP's uniform
# rule at the model's resolution, every frame's tokens concatenated as the question
# encoder's keys, rank inference (k=128) over the training answers of MSRVTT-QA, exact match
# after the VQA answer normalisation, beside the majority-training-answer baseline:
#   python harness/run.py configs/eval_videoqa_msrvtt.py --cfg-options \
#       checkpoint=/models/blip-vqa-base data_root=/data/msrvtt_qa
# data_root holds the official MSRVTT-QA release (test_qa.json, train_qa.json: lists of
# {video_id, question, answer, id}) and the MSRVTT clips as videos/video<video_id>.mp4.
# MSVD-QA (same files, plus youtube_mapping.txt; clips YouTubeClips/<name>.avi, found through
# the mapping, so video_pattern is unused): video_qa_test_dataset.type=MSVDQADataset
# video_qa_test_dataset.video_root=YouTubeClips eval_stage.dataset_name=msvd_qa. Another
# answer vocabulary: video_qa_test_dataset.answer_list_file=<JSON list>.
_base_ = ['./_base_/experiments/evaluate_checkpoint.py']

data_root = None
eval_batch_size = 8  # questions per batch: each brings 16 x 577 frame tokens at 384 px
eval_num_workers = 4  # DataLoader workers decoding clips (decord: one thread each)
video_qa_frames = 16
video_qa_k = 128
video_qa_test_dataset = dict(
    type='VideoQADataset', data_root='${data_root}', ann_file='test_qa.json',
    video_root='videos', video_pattern='video{video_id}.mp4',
    num_frames='${video_qa_frames}', image_size=None,  # the model's
    sampling='uniform', decode_threads=1, train_ann_file='train_qa.json')
eval_stage = dict(type='EvaluateStage', name='eval_video_qa', task='video_qa',
                  checkpoint='${checkpoint}', dataset='${video_qa_test_dataset}',
                  dataset_name='msrvtt_qa', split='test',
                  options=dict(method='rank', inference=dict(k='${video_qa_k}'),
                               batch_size='${eval_batch_size}',
                               num_workers='${eval_num_workers}'))
experiment = dict(name='eval_videoqa_msrvtt')
leaderboard = dict(
    title='Zero-shot video QA on MSRVTT-QA test (BLIP paper method)',
    description="16 frames per clip (BLIP's uniform rule), the VQA model on all frames' "
                'tokens concatenated, rank inference over the training answers (k=128), '
                'exact match after VQA answer normalisation.',
    primary_metrics=[('video_qa', 'msrvtt_qa', 'test', 'accuracy')],
    paper_reference='headline')
