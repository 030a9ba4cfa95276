# ToyWorld's MSRVTT-format clips as a zero-shot text-video retrieval test set: 32 clips of
# moving shapes (n_videos), one caption each, written as BLIP's msrvtt_test.jsonl. Frames:
# BLIP's uniform rule at the world's image size; `video_frames` per clip (BLIP: 8).
video_frames = 8
video_test_dataset = dict(
    type='VideoRetrievalDataset', data_root='${data_root}', ann_file='msrvtt/msrvtt_test.jsonl',
    video_root='msrvtt/videos', num_frames='${video_frames}', image_size='${image_size}',
    max_words=40, sampling='uniform')
# ToyWorld's video questions (MSRVTT-QA format, 3 per clip, 96 in all): the image VQA
# questions' grammar and answers about each clip's objects and background, answered
# zero-shot from `video_qa_frames` frames per clip (the BLIP paper: 16). Candidates: the
# image VQA answer list; the majority-answer baseline counts the image VQA training answers
# (the only training answers the model saw).
video_qa_frames = 16
video_qa_test_dataset = dict(
    type='VideoQADataset', data_root='${data_root}', ann_file='msrvtt/msrvtt_qa_test.json',
    video_root='msrvtt/videos', video_pattern='video{video_id}.mp4',
    num_frames='${video_qa_frames}', image_size='${image_size}', sampling='uniform',
    answer_list_file='annotations/answer_list.json',
    train_ann_file='vqa/v2_mscoco_train_annotations.json')
