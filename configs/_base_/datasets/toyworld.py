# ToyWorld, the embedded synthetic data (generated on first use, cached by spec).
# `toyworld` holds ToyWorldSpec fields; {toyworld_root} is replaced by the data root.
# Sized so the four-variant sharing ablation runs in minutes on a 2-core CPU.
toyworld = dict(seed=0, image_size=64, n_train=800, n_web=1200)
image_size = 64

pretrain_dataset = dict(
    type='ImageTextPairDataset', data_root='{toyworld_root}',
    ann_file=['annotations/pretrain_human.json', 'annotations/pretrain_web.json'],
    image_size=image_size, max_words=30, train=True,
    hflip=False)  # ToyWorld captions say "left of"/"right of": flips would make them wrong
caption_train_dataset = dict(
    type='ImageTextPairDataset', data_root='{toyworld_root}',
    ann_file='annotations/coco_karpathy_train.json', image_size=image_size, max_words=30,
    train=True, hflip=False)
retrieval_train_dataset = caption_train_dataset
caption_val_dataset = dict(
    type='CaptionEvalDataset', data_root='{toyworld_root}',
    ann_file='annotations/coco_karpathy_val.json', image_size=image_size)
caption_test_dataset = dict(caption_val_dataset, ann_file='annotations/coco_karpathy_test.json')
retrieval_val_dataset = dict(
    type='RetrievalEvalDataset', data_root='{toyworld_root}',
    ann_file='annotations/coco_karpathy_val.json', image_size=image_size, max_words=35)
retrieval_test_dataset = dict(retrieval_val_dataset, ann_file='annotations/coco_karpathy_test.json')
flickr_test_dataset = dict(retrieval_val_dataset, ann_file='annotations/flickr30k_test.json')
