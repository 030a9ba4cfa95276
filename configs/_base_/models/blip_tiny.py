# A tiny BLIP for the CPU and ToyWorld: 2-block ViT (patch 8) and a 2-layer MED.
model = dict(
    type='Blip',
    vision=dict(type='BlipViT', arch='vit_tiny_patch8', image_size=64),
    tokenizer=dict(type='BlipTokenizer', vocab='{toyworld_root}/vocab'),
    text_arch='tiny',
    sharing='all_but_sa',
    embed_dim=64,
    queue_size=1024,
    max_text_length=30,
    # A 2-block ViT from scratch cannot learn to pool objects into [CLS] within minutes
    # (ITC stays at chance on ToyWorld); max pooling over patch tokens learns at once.
    image_pool='max',
)
