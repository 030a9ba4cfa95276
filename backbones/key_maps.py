"""How checkpoint keys of official BLIP, Hugging Face BLIP, BERT and timm ViTs map onto our names.

Our :class:`~backbones.blip.Blip` uses official BLIP's names except for the ITC queues,
which live in a ``queue`` submodule (``queue.image_queue``) where official BLIP keeps them
at the top level (``image_queue``). Hugging Face renames the image encoder
(``vision_model.*``) and keeps the text names; a BERT checkpoint holds one text
transformer that initialises both our text encoder and our text decoder (as BLIP does); a
timm / DeiT ViT checkpoint holds our ``visual_encoder.*`` names without the prefix.

Every ``*_to_model`` function returns the model keys a checkpoint key *may* fill (several
for BERT, none when the key has no place in BLIP); the loader keeps those the model has.
Every ``*_absent`` function says why a model key a checkpoint did not fill is absent:
``'missing'`` (this kind of checkpoint should have held it), ``'new'`` (this kind never holds
it: the part is newly initialised by design) or ``'outside'`` (not part of what this kind
of checkpoint describes; the model keeps its own values). Every ``*_ignored`` function says
why a checkpoint key is dropped on purpose (``None``: it is not).
"""
import re
from typing import List, Optional

QUEUE_NAMES = ('image_queue', 'text_queue', 'idx_queue', 'ptr_queue')
QUEUE_PREFIX = 'queue.'

# A tied alias: official BLIP and Hugging Face register the LM bias twice.
TIED_ALIASES = {'cls.predictions.decoder.bias': 'cls.predictions.bias'}

IGNORED_SUFFIXES = {
    'embeddings.position_ids': 'index buffer (0..max_len-1), recomputed by the model',
}

HF_VISION_RENAMES = (
    (r'^vision_model\.embeddings\.class_embedding$', 'visual_encoder.cls_token'),
    (r'^vision_model\.embeddings\.position_embedding$', 'visual_encoder.pos_embed'),
    (r'^vision_model\.embeddings\.patch_embedding\.', 'visual_encoder.patch_embed.proj.'),
    (r'^vision_model\.encoder\.layers\.(\d+)\.layer_norm1\.', r'visual_encoder.blocks.\1.norm1.'),
    (r'^vision_model\.encoder\.layers\.(\d+)\.self_attn\.qkv\.',
     r'visual_encoder.blocks.\1.attn.qkv.'),
    (r'^vision_model\.encoder\.layers\.(\d+)\.self_attn\.projection\.',
     r'visual_encoder.blocks.\1.attn.proj.'),
    (r'^vision_model\.encoder\.layers\.(\d+)\.layer_norm2\.', r'visual_encoder.blocks.\1.norm2.'),
    (r'^vision_model\.encoder\.layers\.(\d+)\.mlp\.', r'visual_encoder.blocks.\1.mlp.'),
    (r'^vision_model\.post_layernorm\.', 'visual_encoder.norm.'),
)

# Old BERT checkpoints (e.g. the original bert-base-uncased .bin) name LayerNorm affine
# parameters gamma/beta.
BERT_LEGACY_SUFFIXES = {'LayerNorm.gamma': 'LayerNorm.weight', 'LayerNorm.beta': 'LayerNorm.bias'}
BERT_TEXT_PREFIXES = ('text_encoder.', 'text_decoder.bert.')


def resolve_tied_alias(key: str) -> str:
    """The canonical name of a tied alias key (``...decoder.bias`` -> ``...bias``), else ``key``."""
    for alias, canonical in TIED_ALIASES.items():
        if key.endswith(alias):
            return key[:-len(alias)] + canonical
    return key


def ignored_reason(key: str) -> Optional[str]:
    """Why a checkpoint key is skipped without being unexpected (``None``: not skipped)."""
    return next((why for suffix, why in IGNORED_SUFFIXES.items() if key.endswith(suffix)), None)


def online_module(module: str) -> str:
    """The online module a momentum module copies (``visual_encoder_m`` -> ``visual_encoder``)."""
    return module[:-2] if module.endswith('_m') else module


def momentum_source(model_key: str) -> Optional[str]:
    """The online key a momentum key copies (``visual_encoder_m.x`` -> ``visual_encoder.x``)."""
    module, _, rest = model_key.partition('.')
    if module.endswith('_m') and rest:
        return f'{online_module(module)}.{rest}'
    return None


# ---------------------------------------------------------------- official BLIP
def official_to_model(key: str) -> List[str]:
    """Model keys of an official BLIP key (queues move under ``queue.``)."""
    key = resolve_tied_alias(key)
    return [QUEUE_PREFIX + key] if key in QUEUE_NAMES else [key]


def model_to_official(key: str) -> str:
    """Official BLIP name of a model key (inverse of :func:`official_to_model`)."""
    if key.startswith(QUEUE_PREFIX) and key[len(QUEUE_PREFIX):] in QUEUE_NAMES:
        return key[len(QUEUE_PREFIX):]
    return key


def official_absent(model_key: str) -> str:
    """An official checkpoint of the model's heads holds every key."""
    return 'missing'


# ---------------------------------------------------------------- Hugging Face BLIP
def huggingface_to_model(key: str) -> List[str]:
    """Model keys of a Hugging Face BLIP key (``vision_model.*`` renamed, text kept)."""
    for pattern, replacement in HF_VISION_RENAMES:
        renamed, count = re.subn(pattern, replacement, key)
        if count:
            return [renamed]
    if key.startswith('vision_model.'):
        return []
    return [resolve_tied_alias(key)]


def huggingface_absent(model_key: str) -> str:
    """Hugging Face BLIP has no queues or ITC temperature (nor momentum encoders: those are
    copied from the online ones)."""
    return 'outside' if model_key.partition('.')[0] in ('queue', 'temp') else 'missing'


# ---------------------------------------------------------------- BERT
# BERT parts BLIP drops when it initialises its text transformer from bert-base-uncased
# (BLIP's med.py embeddings are word + position only; its BertModel has no pooler).
BERT_DROPPED = {
    'embeddings.token_type_embeddings.': 'token types: BLIP\'s embeddings have none',
    'pooler.': 'pooler: BLIP builds BERT without one',
    'cls.seq_relationship.': 'next-sentence head: BLIP has none',
}


def _bert_name(key: str) -> str:
    for legacy, current in BERT_LEGACY_SUFFIXES.items():
        if key.endswith(legacy):
            key = key[:-len(legacy)] + current
    return key[len('bert.'):] if key.startswith('bert.') else key


def bert_to_model(key: str) -> List[str]:
    """Model keys of a BERT key: the transformer fills encoder *and* decoder, ``cls`` the LM
    head."""
    key = _bert_name(key)
    if key.startswith(('embeddings.', 'encoder.')):
        return [prefix + key for prefix in BERT_TEXT_PREFIXES]
    if key.startswith('cls.predictions.'):
        return ['text_decoder.' + resolve_tied_alias(key)]
    return []


def bert_ignored(key: str) -> Optional[str]:
    """Why BLIP drops a BERT key (token types, pooler, next-sentence head), else ``None``."""
    name = _bert_name(key)
    dropped = next((why for prefix, why in BERT_DROPPED.items() if name.startswith(prefix)), None)
    return dropped or ignored_reason(key)


def bert_absent(model_key: str) -> str:
    """BERT never holds cross-attention (nor, without an MLM head, the LM head); no image side."""
    if not model_key.startswith(('text_encoder.', 'text_decoder.')):
        return 'outside'
    if '.crossattention.' in model_key or model_key.startswith('text_decoder.cls.'):
        return 'new'
    return 'missing'


# ---------------------------------------------------------------- timm / DeiT ViT
# Classifier parts of timm ImageNet checkpoints; BLIP's ViT ends at the final norm.
TIMM_CLASSIFIER_PREFIXES = ('head.', 'fc_norm.', 'pre_logits.')


def timm_to_model(key: str) -> List[str]:
    """Model key of a timm ViT key: ``visual_encoder.`` + the same name."""
    return [] if key.startswith(TIMM_CLASSIFIER_PREFIXES) else ['visual_encoder.' + key]


def timm_ignored(key: str) -> Optional[str]:
    """Why a timm key is dropped (the ImageNet classifier), else ``None``."""
    if key.startswith(TIMM_CLASSIFIER_PREFIXES):
        return 'ImageNet classifier: BLIP\'s ViT has none'
    return ignored_reason(key)


def timm_absent(model_key: str) -> str:
    """A timm ViT describes the image encoder only."""
    return 'missing' if model_key.startswith('visual_encoder.') else 'outside'


# ---------------------------------------------------------------- open_clip CLIP
# open_clip names the image tower ``visual.*`` (``conv1``, ``class_embedding``,
# ``positional_embedding``, ``ln_pre``, ``transformer.resblocks.N.*``, ``ln_post``, ``proj``);
# an :class:`~backbones.open_clip_tower.OpenClipTower` keeps it as its ``visual`` submodule.
# Its training checkpoints wrap the state dict (``state_dict``) and, after DDP, prefix
# ``module.``.
OPEN_CLIP_VISUAL = 'visual.'
DDP_PREFIX = 'module.'


def _open_clip_name(key: str) -> str:
    return key[len(DDP_PREFIX):] if key.startswith(DDP_PREFIX) else key


def open_clip_to_model(key: str) -> List[str]:
    """Model key of an open_clip image-tower key: ``visual_encoder.`` + the same name."""
    key = _open_clip_name(key)
    return ['visual_encoder.' + key] if key.startswith(OPEN_CLIP_VISUAL) else []


def open_clip_ignored(key: str) -> Optional[str]:
    """Why an open_clip key is dropped (the text tower, logit scale/bias), else ``None``."""
    if not _open_clip_name(key).startswith(OPEN_CLIP_VISUAL):
        return 'CLIP text tower or logit scale: BLIP has its own text transformer'
    return ignored_reason(key)


def open_clip_absent(model_key: str) -> str:
    """An open_clip checkpoint describes the image encoder (and CLIP's text tower) only."""
    return 'missing' if model_key.startswith('visual_encoder.') else 'outside'
