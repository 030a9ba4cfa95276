# BLIP-large: official BLIP's create_vit('large') + the bert-base MED. ViT-L/16: width 1024,
# 24 blocks, 16 heads, drop path 0.1 (create_vit sets 0.1 for large whatever it is passed);
# the MED's cross-attention reads width 1024 (encoder_width = the ViT's embed_dim).
# BLIP pre-trains it from timm's ImageNet-21k ViT-L/16 (vit_large_patch16_224_in21k).
# Gradient checkpointing and fine-tuning settings are the official ViT-L ones (the commented
# `vit: 'large'` blocks of configs/caption_coco.yaml and retrieval_{coco,flickr}.yaml): only
# the last `vit_ckpt_layer` ViT blocks recompute their activations in backward.
_base_ = ['./blip_base.py']
vit_ckpt_layer = 5  # captioning; large_finetune lists retrieval's
model = dict(vision=dict(arch='vit_large_patch16', drop_path_rate=0.1, grad_checkpointing=True,
                         grad_checkpointing_layers='${vit_ckpt_layer}'))
# Per fine-tuning task: vit_ckpt_layer, batch size per GPU (train/test) and AdamW init_lr
# (cosine to 0, weight decay 0.05 as for base). Pre-training settings for ViT-L are not in the
# official configs (pretrain.yaml is base's: vit_grad_ckpt False, init_lr 3e-4).
large_finetune = dict(
    caption_coco=dict(vit_ckpt_layer=5, batch_size=16, init_lr=2e-6),
    retrieval_coco=dict(vit_ckpt_layer=12, batch_size_train=16, batch_size_test=32, init_lr=5e-6),
    retrieval_flickr=dict(vit_ckpt_layer=10, batch_size_train=16, batch_size_test=32,
                          init_lr=5e-6),
)
