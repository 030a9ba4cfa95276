# BLIP's retrieval protocol on COCO Karpathy test (5k images, 25k captions, k=256) for a
# given checkpoint, e.g. the official retrieval model:
#   python harness/run.py configs/eval_retrieval_coco.py --cfg-options \
#       checkpoint=/models/model_base_retrieval_coco.pth data_root=/data/coco \
#       bert_dir=/models/bert-base-uncased
_base_ = [
    './_base_/experiments/evaluate_retrieval.py',
    './_base_/datasets/coco.py',
]

eval_dataset_name = 'coco'
retrieval_k = 256
experiment = dict(name='eval_retrieval_coco')
leaderboard = dict(title='Retrieval on COCO Karpathy test (BLIP protocol, k=256)')
