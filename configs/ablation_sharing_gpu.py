# The parameter-sharing ablation at BLIP-base shapes on real COCO (GPU). Like BLIP, the ViT
# starts from DeiT-B/16 and the text encoder and decoder from bert-base-uncased: set
# data_root to your COCO + BLIP annotation folder, bert_dir to a local bert-base-uncased
# (vocabulary and weights) and the DeiT file, e.g.
#   torchrun --nproc_per_node 8 harness/run.py configs/ablation_sharing_gpu.py \
#       --launcher pytorch --cfg-options data_root=/data/coco bert_dir=/models/bert-base-uncased \
#       pretrain_init.vision.path=/models/deit_base_patch16_224-b5f2ef4d.pth
# A part may start from random weights only when it says so: pretrain_init.vision.type=random.
_base_ = [
    './_base_/experiments/sharing_ablation.py',
    './_base_/models/blip_base.py',
    './_base_/datasets/coco.py',
    './_base_/schedules/blip_gpu.py',
]
env_cfg = dict(dist_cfg=dict(backend='nccl'))
retrieval_k = 256
eval_batch_size = 128
eval_dataset_name = 'coco'
# BLIP fine-tunes and evaluates captioning and retrieval at 384 px (pos_embed interpolated).
caption_model = dict(losses=('lm',), prompt='a picture of ', max_text_length=40,
                     vision=dict(image_size=384))
retrieval_model = dict(losses=('itc', 'itm'), max_text_length=35, vision=dict(image_size=384))
experiment = dict(name='ablation_sharing_gpu')
init_required = True
pretrain_init = dict(
    vision=dict(type='timm', path='checkpoints/deit_base_patch16_224-b5f2ef4d.pth'),
    text=dict(type='bert', path='${bert_dir}'))
