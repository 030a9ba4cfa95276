# BLIP's zero-shot text-video retrieval on MSRVTT (1k-A test: 1,000 clips, one caption each,
# BLIP's msrvtt_test.jsonl) for a given checkpoint, as eval_retrieval_video.py with
# configs/retrieval_msrvtt.yaml: 8 frames by the uniform rule, 384 px, k=128. The paper's
# row uses the COCO-retrieval fine-tuned model:
#   python harness/run.py configs/eval_video_msrvtt.py --cfg-options \
#       checkpoint=/models/model_base_retrieval_coco.pth bert_dir=/models/bert-base-uncased \
#       data_root=/data/msrvtt
# data_root holds msrvtt_test.jsonl and videos/<clip_name>.mp4.
_base_ = ['./_base_/experiments/evaluate_checkpoint.py']

data_root = None
video_k = 128
video_frames = 8
eval_num_workers = 4  # DataLoader workers decoding clips (decord: one thread each)
video_test_dataset = dict(
    type='VideoRetrievalDataset', data_root='${data_root}', ann_file='msrvtt_test.jsonl',
    video_root='videos', num_frames='${video_frames}', image_size=None,  # the model's
    max_words=40, sampling='uniform', decode_threads=1)
model = dict(max_text_length=35)
eval_stage = dict(type='EvaluateStage', name='eval_video_retrieval', task='video_retrieval',
                  checkpoint='${checkpoint}', dataset='${video_test_dataset}',
                  dataset_name='msrvtt', split='test',
                  options=dict(k='${video_k}', batch_size='${eval_batch_size}',
                               num_workers='${eval_num_workers}'))
experiment = dict(name='eval_video_msrvtt')
leaderboard = dict(
    title='Zero-shot text-video retrieval on MSRVTT 1k-A test (BLIP protocol, k=128)',
    description="8 frames per clip (BLIP's uniform rule), ITC of the frame-averaged feature, "
                "top-128 re-ranked by ITM over all frames' tokens + cosine.",
    primary_metrics=[('video_retrieval', 'msrvtt', 'test', metric)
                     for metric in ('t2v_R@1', 't2v_R@5', 't2v_R@10', 't2v_MdR')],
    paper_reference='headline')
