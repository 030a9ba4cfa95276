# A tiny BLIP for the CPU and ToyWorld: 2-block ViT (patch 8) and a 2-layer MED.
# Three settings depart from BLIP-base so that a few hundred from-scratch steps learn; each
# was measured on ToyWorld (README, "Notes on the tiny ToyWorld models"); a fourth is kept
# from before the recipe followed BLIP:
#  * image_pool='max': a 2-block ViT cannot learn to gather objects into [CLS] in minutes
#    (ITC stays at chance), while max pooling over patch tokens learns at once;
#  * queue_size=0, momentum=0.0: in-batch ITC against the online encoders. With BLIP's
#    m=0.995 the momentum encoders barely move in a few hundred steps, so the ITC
#    positives stay random features and ITC stays at chance (loss ~ln(B + queue));
#  * negative_sharpness=0.1: softer ITM hard negatives. With BLIP's rule, ITC learns so
#    fast that the negatives are near-duplicates of the positives at once, and ITM stays
#    at its prior (loss 0.636) for 1000+ steps; at 0.1 it learns within ~150 steps.
#  * MED dropout 0.0 (BLIP: 0.1): not measured as a need; it keeps the tiny models'
#    numbers comparable with earlier runs.
model = dict(
    type='Blip',
    vision=dict(type='BlipViT', arch='vit_tiny_patch8', image_size=64),
    tokenizer=dict(type='BlipTokenizer', vocab='${data_root}/vocab'),
    text_arch='tiny',
    text_overrides=dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
    sharing='all_but_sa',
    embed_dim=64,
    queue_size=0,
    momentum=0.0,
    negative_sharpness=0.1,
    max_text_length=30,
    image_pool='max',
)
# BLIP's VQA model at the same tiny shapes (its encoder and decoder start from a pre-trained
# Blip's text_encoder and text_decoder; the VQA model shares nothing between them).
vqa_model = dict(
    _delete_=True, type='BlipVQA', vision=model['vision'], tokenizer=model['tokenizer'],
    text_arch='tiny', text_overrides=model['text_overrides'], max_question_length=35)
