# Real COCO-Karpathy (+ BLIP's pre-training JSONs). Set data_root to a folder holding
# BLIP's annotation files under annotations/ and the COCO images (train2014/, val2014/).
data_root = None
image_size = 384
pretrain_dataset = dict(
    type='ImageTextPairDataset', data_root='${data_root}',
    ann_file=['annotations/coco_karpathy_train.json'], image_size=224, max_words=30, train=True,
    crop_scale=(0.2, 1.0))  # BLIP pre-training crops 0.2-1 of the area; fine-tuning 0.5-1
caption_train_dataset = dict(
    type='ImageTextPairDataset', data_root='${data_root}',
    ann_file='annotations/coco_karpathy_train.json', image_size=image_size, max_words=30,
    train=True)
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
