# A small ToyWorld for single-variant CPU runs (the CI benchmark, CapFilt). Configs set the
# COCO-train and web sizes they need.
_base_ = ['./toyworld.py']

toyworld = dict(n_val=40, n_test=60, n_flickr_train=20, n_flickr_val=10, n_flickr_test=10,
                n_vqa_train=10, n_vqa_val=5, n_vqa_test=5, n_videos=4)
