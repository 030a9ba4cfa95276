# BLIP-large: ViT-L/16 (drop path 0.1, gradient checkpointing) + bert-base MED.
_base_ = ['./blip_base.py']
model = dict(vision=dict(arch='vit_large_patch16', drop_path_rate=0.1, grad_checkpointing=True))
