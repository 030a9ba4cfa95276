# BLIP's retrieval protocol on Flickr30K test (1k images, 5k captions, k=128) for a given
# checkpoint (e.g. a Hugging Face blip-itm-base-flickr directory, or the official
# model_base_retrieval_flickr.pth with bert_dir); see eval_retrieval_coco.py.
_base_ = [
    './_base_/experiments/evaluate_retrieval.py',
    './_base_/datasets/flickr30k.py',
]

eval_dataset_name = 'flickr30k'
retrieval_k = 128
retrieval_test_dataset = dict(image_size=None)  # None: the model's (the checkpoint's)
experiment = dict(name='eval_retrieval_flickr30k')
leaderboard = dict(title='Retrieval on Flickr30K test (BLIP protocol, k=128)')
