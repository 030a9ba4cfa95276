# BLIP-base: ViT-B/16 + bert-base MED (set `bert_dir` to a local bert-base-uncased folder).
# BLIP pre-trains it from DeiT-B/16 (deit_base_patch16_224-b5f2ef4d.pth) + bert-base-uncased:
# see `pretrain_init` in configs/ablation_sharing_gpu.py. MED dropout is BLIP's 0.1 (MedConfig).
bert_dir = 'checkpoints/bert-base-uncased'
model = dict(
    type='Blip',
    vision=dict(type='BlipViT', arch='vit_base_patch16', image_size=224, grad_checkpointing=False),
    tokenizer=dict(type='BlipTokenizer', vocab='${bert_dir}'),
    text_arch='base',
    sharing='all_but_sa',
    embed_dim=256,
    queue_size=57600,
    max_text_length=30,
)
