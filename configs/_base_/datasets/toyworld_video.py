# ToyWorld's MSRVTT-format clips as a zero-shot text-video retrieval test set: 32 clips of
# moving shapes (n_videos), one caption each, written as BLIP's msrvtt_test.jsonl. Frames:
# BLIP's uniform rule at the world's image size; `video_frames` per clip (BLIP: 8).
video_frames = 8
video_test_dataset = dict(
    type='VideoRetrievalDataset', data_root='${data_root}', ann_file='msrvtt/msrvtt_test.jsonl',
    video_root='msrvtt/videos', num_frames='${video_frames}', image_size='${image_size}',
    max_words=40, sampling='uniform')
