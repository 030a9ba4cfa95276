# Real Flickr30K (Karpathy splits, BLIP's annotation files). Set data_root to a folder with
# annotations/flickr30k_{train,val,test}.json and the images at the paths they name
# (BLIP's files say 'flickr30k-images/<id>.jpg').
data_root = None
image_size = 384
retrieval_train_dataset = dict(
    type='ImageTextPairDataset', data_root='${data_root}',
    ann_file='annotations/flickr30k_train.json', image_size=image_size, max_words=30,
    train=True)
# Retrieval evaluation keeps 30 words per caption (BLIP's *_retrieval_eval datasets).
retrieval_val_dataset = dict(
    type='RetrievalEvalDataset', data_root='${data_root}',
    ann_file='annotations/flickr30k_val.json', image_size=image_size, max_words=30)
retrieval_test_dataset = dict(retrieval_val_dataset, ann_file='annotations/flickr30k_test.json')
