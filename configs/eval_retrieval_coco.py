# BLIP's retrieval protocol on COCO Karpathy test (5k images, 25k captions, k=256) for a
# given checkpoint; the model (shapes, heads, resolution, tokenizer) comes from it:
#   python harness/run.py configs/eval_retrieval_coco.py --cfg-options \
#       checkpoint=/models/blip-itm-base-coco data_root=/data/coco
# (an official .pth, e.g. model_base_retrieval_coco.pth, also needs
# bert_dir=/models/bert-base-uncased: it holds no tokenizer).
_base_ = [
    './_base_/experiments/evaluate_retrieval.py',
    './_base_/datasets/coco.py',
]

eval_dataset_name = 'coco'
retrieval_k = 256
retrieval_test_dataset = dict(image_size=None)  # None: the model's (the checkpoint's)
experiment = dict(name='eval_retrieval_coco')
leaderboard = dict(title='Retrieval on COCO Karpathy test (BLIP protocol, k=256)')
