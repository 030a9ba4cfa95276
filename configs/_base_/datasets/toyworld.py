# ToyWorld, the embedded synthetic data: data_root='toyworld' generates it on first use (cached
# by spec) from `toyworld`, a dict of ToyWorldSpec fields, and '${data_root}' is its folder.
# Sized so the four-variant sharing ablation runs in minutes on a 2-core CPU.
data_root = 'toyworld'
toyworld = dict(seed=0, image_size=64, n_train=800, n_web=1200)
image_size = 64

pretrain_dataset = dict(
    type='ImageTextPairDataset', data_root='${data_root}',
    ann_file=['annotations/pretrain_human.json', 'annotations/pretrain_web.json'],
    image_size=image_size, max_words=30, train=True, crop_scale=(0.2, 1.0),  # as BLIP
    hflip=False,  # ToyWorld captions say "left of"/"right of": flips would make them wrong
    cache_images=True)  # each image is read once per caption, epoch and variant
caption_train_dataset = dict(
    type='ImageTextPairDataset', data_root='${data_root}',
    ann_file='annotations/coco_karpathy_train.json', image_size=image_size, max_words=30,
    train=True, hflip=False, cache_images=True)
retrieval_train_dataset = caption_train_dataset
caption_val_dataset = dict(
    type='CaptionEvalDataset', data_root='${data_root}',
    ann_file='annotations/coco_karpathy_val.json', image_size=image_size)
caption_test_dataset = dict(caption_val_dataset, ann_file='annotations/coco_karpathy_test.json')
# The COCO-format ground truth of caption_val_dataset (validation metrics read it).
caption_val_gt_file = '${data_root}/annotations/coco_karpathy_val_gt.json'
# Retrieval evaluation keeps 30 words per caption (BLIP's *_retrieval_eval datasets).
retrieval_val_dataset = dict(
    type='RetrievalEvalDataset', data_root='${data_root}',
    ann_file='annotations/coco_karpathy_val.json', image_size=image_size, max_words=30)
retrieval_test_dataset = dict(retrieval_val_dataset, ann_file='annotations/coco_karpathy_test.json')
flickr_test_dataset = dict(retrieval_val_dataset, ann_file='annotations/flickr30k_test.json')
