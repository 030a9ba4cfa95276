"""Build the BLIP a checkpoint describes: its shapes, its heads and its tokenizer.

``MODELS.build(dict(type='BlipFromCheckpoint', checkpoint=PATH, ...))`` reads the
architecture from the checkpoint itself, so that evaluating a checkpoint needs no model
config that could disagree with it:

* a Hugging Face BLIP directory: ``config.json`` gives the ViT (hidden size, layers, heads,
  intermediate size, patch size, image size, LayerNorm eps), the text transformer (the same,
  plus vocabulary size, position table and special-token ids ``bos`` = ``[DEC]``, ``pad``,
  ``sep``) and the ITC projection width (``image_text_hidden_size``); the tokenizer comes
  from the directory (``vocab.txt``, or the WordPiece vocabulary of ``tokenizer.json`` as
  transformers 5 writes it);
* an official BLIP ``.pth`` (or one of ours): the tensor shapes give the ViT
  (``patch_embed.proj.weight``: width and patch; ``pos_embed``: resolution; ``blocks.N``:
  depth; ``mlp.fc1``: MLP ratio), MED (``encoder.layer.N``: depth; word/position embeddings;
  ``intermediate.dense``; ``crossattention.self.key``: the image width it attends to) and
  the ITC width (``vision_proj.weight``). Attention heads are not in the shapes: they are
  the width / 64, as in every BLIP (768 -> 12, 1024 -> 16); other head widths need
  ``vision=dict(num_heads=...)`` / ``text_overrides=dict(num_attention_heads=...)``. Which
  text modules the encoder and decoder share is told from the tensors' values. A ``.pth``
  holds no tokenizer: ``bert_dir`` (a bert-base-uncased folder) is then required.

Either way the heads are those the checkpoint holds: ``text_decoder`` -> ``'lm'``,
``vision_proj`` -> ``'itc'``, ``itm_head`` -> ``'itm'``. A checkpoint with a text encoder
and a text decoder but no ITC/ITM head is BLIP's VQA model (official
``model_base_vqa_capfilt_large.pth``, Hugging Face ``BlipForQuestionAnswering``): a
:class:`~backbones.blip_vqa.BlipVQA` is built instead.
"""
import hashlib
import json
import re
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Union

import torch
from torch import nn

from harness.core.files import atomic_write_text
from harness.core.registry import MODELS

from .checkpoint import KINDS, CheckpointError, detect_kind, read_checkpoint
from .med import SHARING_POLICIES

HEAD_WIDTH = 64  # BLIP's attention head width (ViT-B/L and bert-base alike)
HEAD_PREFIXES = {'itc': 'vision_proj.', 'itm': 'itm_head.', 'lm': 'text_decoder.'}
TEXT_PREFIXES = ('text_encoder.', 'text_decoder.bert.')
VOCAB_CACHE = Path.home() / '.cache' / 'blip_harness' / 'vocab'
HF_VISION_EPS, HF_TEXT_EPS = 1e-5, 1e-12  # transformers' BlipConfig defaults
OFFICIAL_VISION_EPS = 1e-6  # timm's, official BLIP's


# ---------------------------------------------------------------- heads
def is_vqa_checkpoint(model_keys: Sequence[str]) -> bool:
    """Whether the keys describe BLIP's VQA model: a question encoder and an answer decoder,
    no ITC/ITM head."""
    def has(prefix):
        return any(key.startswith(prefix) for key in model_keys)
    return (has('text_encoder.') and has(HEAD_PREFIXES['lm'])
            and not has(HEAD_PREFIXES['itc']) and not has(HEAD_PREFIXES['itm']))


def checkpoint_heads(model_keys: Sequence[str], where: str) -> tuple:
    """The ``losses`` (heads) a (non-VQA) checkpoint's model keys describe, in BLIP's order."""
    heads = tuple(head for head, prefix in HEAD_PREFIXES.items()
                  if any(key.startswith(prefix) for key in model_keys))
    if not heads:
        has_encoder = any(key.startswith('text_encoder.') for key in model_keys)
        raise CheckpointError(
            f'{where} holds none of {sorted(HEAD_PREFIXES.values())}'
            f'{" (a text encoder without any head: a feature extractor)" if has_encoder else ""}'
            f': not a BLIP captioning, retrieval, VQA or pre-training checkpoint')
    return heads


def heads_of(width: int) -> Optional[int]:
    """Attention heads of a ``width``-wide transformer at BLIP's 64 per head (``None`` when
    the width is no multiple of 64: the count must then be given)."""
    return None if width % HEAD_WIDTH else width // HEAD_WIDTH


def require_heads(vision: Mapping, text: Mapping, where: str):
    """Refuse to guess head counts the shapes do not tell, naming the option that sets them."""
    for part, fields, name, option in (('ViT', vision, 'embed_dim', 'vision=dict(num_heads=...)'),
                                       ('text transformer', text, 'hidden_size',
                                        'text_overrides=dict(num_attention_heads=...)')):
        if fields.get('num_heads' if part == 'ViT' else 'num_attention_heads') is None:
            raise CheckpointError(f'{where}: the {part} is {fields[name]} wide, not a multiple '
                                  f'of {HEAD_WIDTH}, so its head count cannot be told from the '
                                  f'shapes; give it as {option}')


# ---------------------------------------------------------------- Hugging Face config.json
def huggingface_architecture(config: Mapping, where: str) -> dict:
    """``Blip`` arguments (no tokenizer) from a Hugging Face BLIP ``config.json``."""
    vision, text = config.get('vision_config') or {}, config.get('text_config') or {}
    needed = {'vision_config': ('hidden_size', 'num_hidden_layers', 'num_attention_heads',
                                'intermediate_size', 'patch_size', 'image_size'),
              'text_config': ('hidden_size', 'num_hidden_layers', 'num_attention_heads',
                              'intermediate_size', 'vocab_size')}
    for section, fields in needed.items():
        absent = [name for name in fields if name not in (config.get(section) or {})]
        if absent:
            raise CheckpointError(f'{where}/config.json lacks {section}.{", ".join(absent)}; '
                                  f'is it a Hugging Face BLIP config?')
    width = vision['hidden_size']
    if text.get('encoder_hidden_size', width) != width:
        raise CheckpointError(f'{where}/config.json: text_config.encoder_hidden_size '
                              f'{text["encoder_hidden_size"]} differs from vision_config.'
                              f'hidden_size {width}; BLIP cross-attends to the ViT tokens')
    return dict(
        vision=dict(type='BlipViT', arch='custom', embed_dim=width,
                    depth=vision['num_hidden_layers'], num_heads=vision['num_attention_heads'],
                    patch_size=vision['patch_size'], image_size=vision['image_size'],
                    mlp_ratio=vision['intermediate_size'] / width,
                    layer_norm_eps=vision.get('layer_norm_eps', HF_VISION_EPS)),
        text_overrides=dict(
            hidden_size=text['hidden_size'], num_hidden_layers=text['num_hidden_layers'],
            num_attention_heads=text['num_attention_heads'],
            intermediate_size=text['intermediate_size'],
            max_position_embeddings=text.get('max_position_embeddings', 512),
            layer_norm_eps=text.get('layer_norm_eps', HF_TEXT_EPS)),
        embed_dim=config.get('image_text_hidden_size', 256))


def huggingface_token_ids(config: Mapping) -> Dict[str, int]:
    """The vocabulary size and special-token ids a Hugging Face BLIP was trained with."""
    text = config.get('text_config') or {}
    ids = dict(vocab_size=text.get('vocab_size'), bos_token_id=text.get('bos_token_id', 30522),
               pad_token_id=text.get('pad_token_id', 0), sep_token_id=text.get('sep_token_id', 102))
    return {name: value for name, value in ids.items() if value is not None}


# ---------------------------------------------------------------- official tensor shapes
def _count_blocks(keys: Sequence[str], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r'(\d+)\.')
    found = {int(match.group(1)) for key in keys for match in [pattern.match(key)] if match}
    return max(found) + 1 if found else 0


def official_architecture(state: Mapping[str, torch.Tensor], where: str) -> dict:
    """``Blip`` arguments (no tokenizer) from the tensor shapes of an official-layout state
    (under our model's key names, see :func:`backbones.key_maps.official_to_model`)."""
    keys = list(state)

    def shape(key: str) -> torch.Size:
        if key not in state:
            raise CheckpointError(f'{where} lacks {key}, needed to tell the model\'s shape')
        return state[key].shape

    width, _, patch, _ = shape('visual_encoder.patch_embed.proj.weight')
    grid = round((shape('visual_encoder.pos_embed')[1] - 1) ** 0.5)
    vision = dict(type='BlipViT', arch='custom', embed_dim=width, patch_size=patch,
                  image_size=grid * patch, depth=_count_blocks(keys, 'visual_encoder.blocks.'),
                  num_heads=heads_of(width),
                  mlp_ratio=shape('visual_encoder.blocks.0.mlp.fc1.weight')[0] / width,
                  layer_norm_eps=OFFICIAL_VISION_EPS)
    text_prefix = next((p for p in TEXT_PREFIXES if f'{p}embeddings.word_embeddings.weight'
                        in state), None)
    if text_prefix is None:
        expected = ' or '.join(f'{p}embeddings.word_embeddings.weight' for p in TEXT_PREFIXES)
        raise CheckpointError(f'{where} holds no text transformer (no {expected})')
    vocab_size, hidden = shape(f'{text_prefix}embeddings.word_embeddings.weight')
    layer = f'{text_prefix}encoder.layer.0.'
    cross_width = shape(f'{layer}crossattention.self.key.weight')[1]
    if cross_width != width:
        raise CheckpointError(f'{where}: {layer}crossattention.self.key.weight attends to '
                              f'{cross_width}-wide image tokens but the ViT is {width} wide')
    text = dict(hidden_size=hidden,
                num_hidden_layers=_count_blocks(keys, f'{text_prefix}encoder.layer.'),
                num_attention_heads=heads_of(hidden),
                intermediate_size=shape(f'{layer}intermediate.dense.weight')[0],
                max_position_embeddings=shape(
                    f'{text_prefix}embeddings.position_embeddings.weight')[0])
    found = dict(vision=vision, text_overrides=text, sharing=official_sharing(state))
    if 'vision_proj.weight' in state:
        found['embed_dim'] = shape('vision_proj.weight')[0]
    if 'queue.image_queue' in state:
        found['queue_size'] = shape('queue.image_queue')[1]
    return dict(found, vocab_size=vocab_size)


def official_sharing(state: Mapping[str, torch.Tensor]) -> str:
    """The sharing policy whose shared parts are equal in the checkpoint (``'none'`` if none
    fits; a model without both an encoder and a decoder shares nothing anyway)."""
    part_keys = {'attention': 'attention.self.query.weight',
                 'crossattention': 'crossattention.self.query.weight',
                 'ffn': 'intermediate.dense.weight'}
    encoder, decoder = (f'{prefix}encoder.layer.0.' for prefix in TEXT_PREFIXES)
    if f'{decoder}{part_keys["ffn"]}' not in state or f'{encoder}{part_keys["ffn"]}' not in state:
        return 'all_but_sa'
    shared = {part for part, key in part_keys.items()
              if torch.equal(state[encoder + key], state[decoder + key])}
    return next((policy for policy, parts in SHARING_POLICIES.items()
                 if set(parts) == shared and policy != 'none'), 'none')


# ---------------------------------------------------------------- tokenizer
def checkpoint_vocab(directory: Optional[Path], bert_dir: Optional[str], where: str) -> str:
    """The WordPiece vocabulary to tokenize with: the checkpoint directory's own (``vocab.txt``
    or ``tokenizer.json``), else ``bert_dir``'s."""
    if directory is not None and (directory / 'vocab.txt').is_file():
        return str(directory)
    if directory is not None and (directory / 'tokenizer.json').is_file():
        return str(vocab_from_tokenizer_json(directory / 'tokenizer.json'))
    if bert_dir:
        return str(bert_dir)
    raise CheckpointError(
        f'{where} holds no tokenizer (an official .pth never does; a Hugging Face directory '
        f'would hold vocab.txt or tokenizer.json): pass bert_dir=/path/to/bert-base-uncased '
        f'(e.g. --cfg-options bert_dir=...), the vocabulary BLIP was trained with')


def vocab_from_tokenizer_json(path: Path) -> Path:
    """A ``vocab.txt`` with the WordPiece vocabulary of a ``tokenizer.json`` (cached by content).

    Added tokens (``[DEC]``, ``[ENC]``) are left out: :class:`~backbones.tokenizer.
    BlipTokenizer` adds them after the vocabulary, and the caller checks their ids against
    the checkpoint's config.
    """
    data = path.read_bytes()
    model = json.loads(data).get('model') or {}
    vocab = model.get('vocab')
    if model.get('type') != 'WordPiece' or not isinstance(vocab, dict):
        raise CheckpointError(f'{path} is not a WordPiece tokenizer (model.type '
                              f'{model.get("type")!r}); BLIP tokenizes with bert-base-uncased')
    tokens = sorted(vocab, key=vocab.get)
    if [vocab[token] for token in tokens] != list(range(len(tokens))):
        raise CheckpointError(f'{path}: the WordPiece ids are not 0..{len(tokens) - 1}')
    target = VOCAB_CACHE / hashlib.sha256(data).hexdigest()[:16] / 'vocab.txt'
    if not target.is_file():
        atomic_write_text(target, ''.join(f'{token}\n' for token in tokens))
    return target


def check_token_ids(model: nn.Module, expected: Mapping[str, int], where: str):
    """Refuse a tokenizer whose vocabulary size or special ids differ from the checkpoint's."""
    tokenizer = model.tokenizer
    ours = dict(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                pad_token_id=tokenizer.pad_token_id, sep_token_id=tokenizer.sep_token_id)
    differing = [f'{name} {ours[name]} (checkpoint: {value})' for name, value in expected.items()
                 if ours[name] != value]
    if differing:
        raise CheckpointError(f'the tokenizer ({tokenizer.vocab_file}) does not match {where}: '
                              f'{", ".join(differing)}; use the vocabulary the checkpoint was '
                              f'trained with')


# ---------------------------------------------------------------- builder
BLIP_ONLY = ('sharing', 'embed_dim', 'queue_size')  # arguments BlipVQA does not take
ANSWER_DECODER_KEY = 'text_decoder.bert.encoder.layer.0.crossattention.self.key.weight'


def check_answer_decoder(named: Mapping[str, torch.Tensor], text: Mapping, where: str):
    """Refuse a VQA checkpoint whose answer decoder does not cross-attend to text-wide question
    states (BLIP's; a Hugging Face ``BlipForQuestionAnswering`` whose ViT is wider than its
    text transformer is shaped for image tokens there and cannot run)."""
    key = named.get(ANSWER_DECODER_KEY)
    if key is not None and key.shape[1] != text['hidden_size']:
        raise CheckpointError(f'{where}: the answer decoder\'s cross-attention '
                              f'({ANSWER_DECODER_KEY}) reads {key.shape[1]}-wide states, but '
                              f'the question states it answers are {text["hidden_size"]} wide; '
                              f'BLIP\'s VQA decoder attends to the question encoder')


def _merged(found: Optional[dict], given: Optional[dict]) -> dict:
    return dict(found or {}, **(given or {}))


@MODELS.register_module(name='BlipFromCheckpoint')
def blip_from_checkpoint(checkpoint: Union[str, Path], bert_dir: Optional[str] = None,
                         vision: Optional[dict] = None, text_overrides: Optional[dict] = None,
                         **blip_args) -> nn.Module:
    """A :class:`~backbones.blip.Blip` (or, for a VQA checkpoint, a
    :class:`~backbones.blip_vqa.BlipVQA`) of the architecture ``checkpoint`` describes (random
    weights: the caller loads them, e.g. the evaluation stage, strictly).

    Args:
        checkpoint: a Hugging Face BLIP directory or an official-layout ``.pth`` (also ours).
        bert_dir: the tokenizer's vocabulary when the checkpoint holds none (``.pth``).
        vision, text_overrides: fields replacing what was read (e.g. ``num_heads`` of a ViT
            whose heads are not 64 wide, or ``image_size`` to evaluate at another resolution).
        blip_args: the rest of ``Blip``'s (or ``BlipVQA``'s) arguments, i.e. the evaluation
            protocol's (``prompt``, ``max_text_length``, ``max_question_length``...);
            ``losses`` defaults to the checkpoint's heads.
    """
    state, where, config = read_checkpoint(checkpoint)
    kind = detect_kind(state, where)
    if kind not in ('official', 'huggingface'):
        raise CheckpointError(f'{where} is a {KINDS[kind].title} checkpoint, not a BLIP; '
                              f'its architecture cannot be built from it')
    named = {key: value for checkpoint_key, value in state.items() if torch.is_tensor(value)
             for key in KINDS[kind].to_model(checkpoint_key)}
    if kind == 'huggingface':
        if config is None:
            raise CheckpointError(f'{where} has Hugging Face BLIP keys but no config.json beside '
                                  f'them; point at the save_pretrained directory')
        found, token_ids = huggingface_architecture(config, where), huggingface_token_ids(config)
    else:
        found = official_architecture(named, where)
        token_ids = dict(vocab_size=found.pop('vocab_size'))
    directory = Path(where) if Path(where).is_dir() else None
    if is_vqa_checkpoint(list(named)):
        check_answer_decoder(named, found['text_overrides'], where)
        arguments = {name: value for name, value in found.items() if name not in BLIP_ONLY}
        arguments.update(blip_args, type='BlipVQA')
    else:
        arguments = dict(found, losses=checkpoint_heads(list(named), where), type='Blip')
        arguments.update(blip_args)
    arguments.update(
        vision=_merged(found['vision'], vision),
        text_overrides=_merged(found['text_overrides'], text_overrides),
        tokenizer=dict(type='BlipTokenizer', vocab=checkpoint_vocab(directory, bert_dir, where)))
    require_heads(arguments['vision'], arguments['text_overrides'], where)
    model = MODELS.build(arguments)
    check_token_ids(model, token_ids, where)
    return model
